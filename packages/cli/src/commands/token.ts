import { KillpathError } from '@killpath/protocol';
import { CONNECTION_OPTIONS, parse } from '../args.ts';
import { clientFor } from '../config.ts';

export const TOKEN_HELP = `killpath token create --role operator|viewer|agent|admin --tenant T [--agent A] [--name NAME] [--json]

Mints a token (admin token required). The secret is printed once; only its hash is stored.
Admin tokens span every tenant: use --tenant '*'.`;

/** `killpath token create`. */
export async function token(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parse(rest, {
    ...CONNECTION_OPTIONS,
    role: { type: 'string' },
    tenant: { type: 'string' },
    agent: { type: 'string' },
    name: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') {
    console.log(TOKEN_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'create') throw new KillpathError('invalid_request', `unknown token command "${sub}" (create)`);
  if (!values.role || !values.tenant)
    throw new KillpathError(
      'invalid_request',
      '--role and --tenant are required (see killpath token --help)',
    );
  const api = clientFor(values);
  const r = await api.post<{
    token: string;
    id: string;
    name: string;
    role: string;
    tenant: string;
    agent: string | null;
  }>('/v1/tokens', {
    role: values.role,
    tenant: values.tenant,
    ...(values.agent ? { agent: values.agent } : {}),
    ...(values.name ? { name: values.name } : {}),
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else
    console.log(
      `${r.token}\n(${r.role} token "${r.name}" for tenant ${r.tenant}${r.agent ? `, agent ${r.agent}` : ''}; shown once)`,
    );
  return 0;
}
