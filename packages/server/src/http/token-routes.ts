import type { Hono } from 'hono';
import { KillpathError, isIdentifier } from '@killpath/protocol';
import type { TokenDesk } from '../auth/token-desk.ts';
import type { TokenRecord } from '../store/store.ts';
import { body, type Env } from './common.ts';
import { LauncherTokenBody, RevokeTokenBody, RotateAdminBody, TokenBody } from './schemas.ts';

/** A token as the API shows it: never its secret nor its hash. */
function shown(t: TokenRecord): TokenRecord {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    tenant: t.tenant,
    agent: t.agent,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    revokedAt: t.revokedAt,
    revokedBy: t.revokedBy,
    revokeReason: t.revokeReason,
    launcher: t.launcher,
    mintedBy: t.mintedBy,
  };
}

/**
 * Token routes: mint (`POST /v1/tokens`, the secret in the answer once), list
 * (`GET /v1/tokens`), revoke (`POST /v1/tokens/{id}/revoke`) and rotate the admin token
 * (`POST /v1/tokens/rotate-admin`), and the agent token an operator's launcher hands its agent
 * (`POST /v1/launchers/{id}/token`). Who may do what is the desk's to decide.
 */
export function tokenRoutes(app: Hono<Env>, tokens: TokenDesk): void {
  app.post('/v1/tokens', async (c) => {
    const b = await body(c, TokenBody);
    const { secret, record } = await tokens.create(c.get('principal'), b);
    return c.json({ token: secret, ...shown(record) }, 201);
  });

  app.post('/v1/launchers/:id/token', async (c) => {
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'launcher id must be an identifier');
    const b = await body(c, LauncherTokenBody);
    const { secret, record } = await tokens.mintForLauncher(c.get('principal'), id, b);
    return c.json({ token: secret, ...shown(record) }, 201);
  });

  // The launcher ends its own token when it exits (asked with that token).
  app.post('/v1/launchers/:id/token/revoke', async (c) => {
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'launcher id must be an identifier');
    const r = await tokens.endLauncherToken(c.get('principal'), id);
    return c.json({ token: shown(r) });
  });

  app.get('/v1/tokens', async (c) => {
    // Unpaged: every token the caller may see, so `total` is their number.
    const list = await tokens.list(c.get('principal'));
    return c.json({ total: list.length, tokens: list.map(shown) });
  });

  app.post('/v1/tokens/rotate-admin', async (c) => {
    const b = await body(c, RotateAdminBody);
    const r = await tokens.rotateAdmin(c.get('principal'), b.reason ?? 'admin token rotated');
    return c.json({ token: r.secret, ...shown(r.record), revoked: r.revoked, file: r.file }, 201);
  });

  app.post('/v1/tokens/:id/revoke', async (c) => {
    const id = c.req.param('id');
    if (!isIdentifier(id)) throw new KillpathError('invalid_request', 'token id must be an identifier');
    const b = await body(c, RevokeTokenBody);
    const r = await tokens.revoke(c.get('principal'), id, b.reason);
    return c.json({ token: shown(r.token), streamsClosed: r.streamsClosed });
  });
}
