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
// Test-only routes: POST /test/sign {kid?, alg?, claims} signs claims with a published key (or, for
// kid "stranger", with a key the JWKS never published) so tests can make expired, not-yet-valid and
// wrong-issuer tokens without waiting; GET /test/exchanges lists the token exchanges made.
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
const ROLES = {
  alice: ['approver'], bob: [], machine: ['admin'], reader: [], 'opaque-machine': ['admin'], 'mcp-master': [],
};

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
// Every token exchange made, for the tests to read (GET /test/exchanges): who for whom and where.
const exchanges = [];

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
      // Master as a client: its own tokens for its downstreams, and token exchange (RFC 8693).
      client_id: 'mcp-master',
      client_secret: 'master-secret',
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
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

// RFC 8693 token exchange: an access token this provider issued (a JWT, verified against its own
// keys) becomes one for the requested resource, with the same subject and the exchanging client
// as the actor. oidc-provider has the grant's plumbing (client authentication at /token); this is
// the grant itself.
const publicKeys = jose.createLocalJWKSet({
  keys: keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
});
provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const params = ctx.oidc.params;
  const fail = (error, description) => {
    ctx.status = 400;
    ctx.body = { error, error_description: description };
  };
  if (params.subject_token_type !== ACCESS_TOKEN) {
    return fail('invalid_request', 'subject_token_type must be an access token');
  }
  let subject;
  try {
    ({ payload: subject } = await jose.jwtVerify(params.subject_token, publicKeys, { issuer }));
  } catch (e) {
    return fail('invalid_grant', `subject_token is not valid: ${e.code || e.message}`);
  }
  const resource = params.resource;
  if (!resource) return fail('invalid_target', 'resource is required');
  const now = Math.floor(Date.now() / 1000);
  const exp = Math.min(subject.exp, now + 300);
  const claims = {
    sub: subject.sub,
    aud: resource,
    scope: subject.scope,
    roles: subject.roles ?? [],
    client_id: ctx.oidc.client.clientId,
    act: { sub: ctx.oidc.client.clientId },
    jti: crypto.randomUUID(),
  };
  const token = await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: keys[0].kid, typ: 'at+jwt' })
    .setIssuer(issuer).setIssuedAt(now).setExpirationTime(exp)
    .sign(await jose.importJWK(keys[0], 'RS256'));
  exchanges.push({ sub: subject.sub, subject_aud: subject.aud, actor: ctx.oidc.client.clientId, resource });
  ctx.body = {
    access_token: token,
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: exp - now,
  };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope']);

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/exchanges' && ctx.method === 'GET') {
    ctx.body = exchanges;
    return;
  }
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
