import { KillpathError } from '@killpath/protocol';
import { CONNECTION_OPTIONS, parse } from '../args.ts';
import { clientFor } from '../config.ts';
import { table } from '../output.ts';

export const TOKEN_HELP = `killpath token create --role operator|viewer|agent|admin --tenant T [--agent A] [--name NAME]
                      [--ttl 8h | --expires-at 2026-12-31T18:00:00Z] [--json]
killpath token list [--json]
killpath token revoke TOKEN_ID --reason TEXT [--json]
killpath token rotate-admin [--reason TEXT] [--json]

create        mints a token (admin token required). The secret is printed once; only its hash is
              stored. Admin tokens span every tenant: use --tenant '*'. --ttl (s, m, h, d, e.g.
              8h) or --expires-at makes it stop working then.
list          every token you may manage (admins: all; operators: their tenant's), never a secret.
revoke        stops a token at once: its next request answers 401 "token revoked" and its open
              streams (worker, launcher) are closed. Audited with your reason.
rotate-admin  replaces the admin token the control plane wrote at first start: a new one is
              written to its admin.token (mode 0600) and printed once; the old one is revoked.`;

/** A token as the API lists it. */
interface TokenRow {
  id: string;
  name: string;
  role: string;
  tenant: string;
  agent: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `--ttl 90s | 30m | 8h | 7d` into ms. */
export function ttlFlag(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : Number.NaN;
  if (!m || !(ms >= 1000))
    throw new KillpathError(
      'invalid_request',
      `--ttl takes a duration of at least 1s with a unit s, m, h or d (e.g. 8h, 30m, 7d), not "${text}"`,
    );
  return ms;
}

function state(t: TokenRow, now: number): string {
  if (t.revokedAt !== null) return `revoked ${t.revokedAt} by ${t.revokedBy ?? '?'}: ${t.revokeReason ?? ''}`;
  if (t.expiresAt !== null && Date.parse(t.expiresAt) <= now) return `expired ${t.expiresAt}`;
  return t.expiresAt === null ? 'active' : `active until ${t.expiresAt}`;
}

/** `killpath token create|list|revoke|rotate-admin`. */
export async function token(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(
    rest,
    {
      ...CONNECTION_OPTIONS,
      role: { type: 'string' },
      tenant: { type: 'string' },
      agent: { type: 'string' },
      name: { type: 'string' },
      ttl: { type: 'string' },
      'expires-at': { type: 'string' },
      reason: { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (values.help || sub === undefined || sub === '--help' || sub === '-h') {
    console.log(TOKEN_HELP);
    return sub === undefined ? 2 : 0;
  }
  const extra = (n: number) => {
    if (positionals.length !== n)
      throw new KillpathError('invalid_request', `unexpected arguments: ${positionals.slice(n).join(' ')}`);
  };
  if (sub === 'create') {
    extra(0);
    return create(values);
  }
  if (sub === 'list') {
    extra(0);
    const api = clientFor(values);
    const r = await api.get<{ total?: number; tokens: TokenRow[] }>('/v1/tokens');
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else {
      const now = Date.now();
      console.log(`all ${r.total ?? r.tokens.length} token(s) you may manage, oldest first`);
      console.log(
        table(
          ['id', 'name', 'role', 'tenant', 'agent', 'created', 'state'],
          r.tokens.map((t) => [t.id, t.name, t.role, t.tenant, t.agent, t.createdAt, state(t, now)]),
        ),
      );
    }
    return 0;
  }
  if (sub === 'revoke') {
    if (positionals.length !== 1)
      throw new KillpathError('invalid_request', 'usage: killpath token revoke TOKEN_ID --reason TEXT');
    if (!values.reason || values.reason.trim() === '')
      throw new KillpathError('invalid_request', '--reason is required: a revocation is audited');
    const api = clientFor(values);
    const r = await api.post<{ token: TokenRow; streamsClosed: number }>(
      `/v1/tokens/${encodeURIComponent(positionals[0]!)}/revoke`,
      { reason: values.reason },
    );
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else
      console.log(
        `revoked ${r.token.role} token "${r.token.name}" (${r.token.id}); ${r.streamsClosed} open stream${r.streamsClosed === 1 ? '' : 's'} closed`,
      );
    return 0;
  }
  if (sub === 'rotate-admin') {
    extra(0);
    const api = clientFor(values);
    const r = await api.post<TokenRow & { token: string; revoked: string | null; file: string }>(
      '/v1/tokens/rotate-admin',
      values.reason ? { reason: values.reason } : {},
    );
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else
      console.log(
        `${r.token}\n(new admin token ${r.id}, shown once; written to ${r.file} on the control plane's host, mode 0600; ${r.revoked === null ? 'no previous admin.token token to revoke' : `old token ${r.revoked} revoked`})`,
      );
    return 0;
  }
  throw new KillpathError(
    'invalid_request',
    `unknown token command "${sub}" (create, list, revoke, rotate-admin)`,
  );
}

async function create(values: {
  role?: string | undefined;
  tenant?: string | undefined;
  agent?: string | undefined;
  name?: string | undefined;
  ttl?: string | undefined;
  'expires-at'?: string | undefined;
  json?: boolean | undefined;
  url?: string | readonly string[] | undefined;
  token?: string | undefined;
  'data-dir'?: string | undefined;
}): Promise<number> {
  if (!values.role || !values.tenant)
    throw new KillpathError(
      'invalid_request',
      '--role and --tenant are required (see killpath token --help)',
    );
  if (values.ttl !== undefined && values['expires-at'] !== undefined)
    throw new KillpathError('invalid_request', '--ttl and --expires-at exclude each other');
  let expiresAt: string | undefined;
  if (values['expires-at'] !== undefined) {
    const at = Date.parse(values['expires-at']);
    if (Number.isNaN(at))
      throw new KillpathError(
        'invalid_request',
        `--expires-at takes an ISO 8601 time, e.g. 2026-12-31T18:00:00Z, not "${values['expires-at']}"`,
      );
    expiresAt = new Date(at).toISOString();
  }
  const api = clientFor(values);
  const r = await api.post<TokenRow & { token: string }>('/v1/tokens', {
    role: values.role,
    tenant: values.tenant,
    ...(values.agent ? { agent: values.agent } : {}),
    ...(values.name ? { name: values.name } : {}),
    ...(values.ttl !== undefined ? { ttlMs: ttlFlag(values.ttl) } : {}),
    ...(expiresAt !== undefined ? { expiresAt } : {}),
  });
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else
    console.log(
      `${r.token}\n(${r.role} token "${r.name}" (${r.id}) for tenant ${r.tenant}${r.agent ? `, agent ${r.agent}` : ''}${r.expiresAt ? `, expires ${r.expiresAt}` : ''}; shown once)`,
    );
  return 0;
}
