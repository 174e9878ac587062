// A real OpenID provider for the OAuth tests: oidc-provider (a certified OpenID Connect
// implementation) on loopback, issuing JWT access tokens for the resource a client names (RFC 8707).
//
// Run by the tests as `npx -y -p node@22 -p oidc-provider@9 node provider.mjs` from a directory
// whose node_modules is the npx one. Environment:
//   PORT       port to listen on (127.0.0.1)
//   ISSUER     issuer identifier (default http://127.0.0.1:PORT)
//   KEY_DIR    where signing keys are kept between restarts (<kid>.json, private JWKs)
//   KEYS       comma-separated key ids published in the JWKS; the first signs (rotation = restart
//              with another list)
//   TOKEN_TTL  access token lifetime in seconds (default 3600)
// Test-only route: POST /test/sign {kid?, alg?, claims} signs claims with a published key (or, for
// kid "stranger", with a key the JWKS never published) so tests can make expired, not-yet-valid and
// wrong-issuer tokens without waiting.
import fs from 'node:fs';
import path from 'node:path';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const dir = process.env.KEY_DIR;
const kids = (process.env.KEYS || 'k1').split(',').filter(Boolean);
const ttl = Number(process.env.TOKEN_TTL || 3600);

async function privateKey(kid) {
  const file = path.join(dir, `${kid}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}
const keys = [];
for (const kid of kids) keys.push(await privateKey(kid));

// The `roles` claim of access tokens, by account (users) or client (machines).
const ROLES = { alice: ['approver'], bob: [], machine: ['admin'], reader: [], 'opaque-machine': ['admin'] };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'machine',
      client_secret: 'machine-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'mcp:read mcp:admin',
    },
    {
      client_id: 'reader',
      client_secret: 'reader-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'mcp:read',
    },
    {
      // Gets opaque (not JWT) access tokens: the resource server introspects them.
      client_id: 'opaque-machine',
      client_secret: 'opaque-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'mcp:read',
    },
    {
      // The resource server's own client: introspection of opaque tokens.
      client_id: 'mcp-resource',
      client_secret: 'resource-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
  ],
  jwks: { keys },
  scopes: ['openid', 'offline_access', 'mcp:read', 'mcp:admin'],
  claims: { openid: ['sub'] },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    registration: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => (oneOf ? oneOf[0] : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        const opaque = client.clientId === 'opaque-machine';
        return {
          scope: 'mcp:read mcp:admin',
          audience: resource,
          accessTokenTTL: ttl,
          accessTokenFormat: opaque ? 'opaque' : 'jwt',
          ...(opaque ? {} : { jwt: { sign: { alg: 'RS256' } } }),
        };
      },
    },
  },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  extraTokenClaims: (ctx, token) => ({ roles: ROLES[token.accountId ?? token.clientId] ?? [] }),
  pkce: { required: () => true },
  ttl: { AccessToken: ttl, ClientCredentials: ttl },
});

const stranger = (await jose.generateKeyPair('RS256')).privateKey;

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/sign' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    const { kid = kids[0], alg = 'RS256', claims } = JSON.parse(body);
    const key = kid === 'stranger'
      ? stranger
      : await jose.importJWK(await privateKey(kid), alg);
    ctx.body = await new jose.SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'at+jwt' }).sign(key);
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
