// A real OpenID provider for the token tests: panva's oidc-provider, over HTTPS with the
// test PKI's host certificate. Started by tests/tokens/conftest.py; prints one JSON line
// {"issuer": ..., "port": ...} on stdout when it listens.
//
// Environment: IDP_CERT, IDP_KEY (PEM files), IDP_TTL (access-token lifetime, seconds),
// IDP_SHORT_TTL (lifetime for the client "fts-robot-short").
//
// Clients:
//   fts-robot        client_credentials, secret by HTTP Basic (RS256 JWT access tokens)
//   fts-robot-post   client_credentials, secret in the form body
//   fts-robot-short  client_credentials, short-lived tokens (the expiry tests)
//   fts-robot-es256  client_credentials, ES256-signed tokens
//   fts-user         a public client holding a user's refresh token (like oidc-agent)
//
// Test-only routes (a test harness, not part of OpenID Connect):
//   GET  /test/counts           {"token": <POST /token requests>, "discovery": <GETs>}
//   POST /test/reset            zero the counts
//   POST /test/refresh-token    {"resource", "scope"} -> {"refresh_token"} for user "test-user":
//                               a grant seeded through the provider's own models, as if the
//                               user had consented in a browser.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

import Provider from 'oidc-provider';

const TTL = Number(process.env.IDP_TTL || 300);
const SHORT_TTL = Number(process.env.IDP_SHORT_TTL || 30);
const SECRET = process.env.IDP_ROBOT_SECRET || 'robot-secret';
const USER = 'test-user';
// Scopes a resource server (FTS or a storage endpoint) accepts: fts, offline_access and the
// WLCG storage scopes with any path.
const ALLOWED_SCOPE = /^(fts|offline_access|storage\.(read|modify|create|stage):\/\S*)$/;

const counts = { token: 0, discovery: 0 };

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...ec, kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ];
}

function robot(clientId, method) {
  return {
    client_id: clientId,
    client_secret: SECRET,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: method,
  };
}

function requestedScopes(ctx) {
  return String(ctx.oidc.params.scope || '').split(' ').filter(Boolean);
}

function resourceServer(ctx, resource, client) {
  if (!resource.startsWith('https://')) {
    throw new Error(`resource must be an https URL: ${resource}`);
  }
  const scopes = new Set(['fts', 'offline_access']);
  for (const scope of requestedScopes(ctx)) {
    if (ALLOWED_SCOPE.test(scope)) scopes.add(scope);
  }
  return {
    audience: resource,
    scope: [...scopes].join(' '),
    accessTokenTTL: client.clientId === 'fts-robot-short' ? SHORT_TTL : TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: client.clientId === 'fts-robot-es256' ? 'ES256' : 'RS256' } },
  };
}

function configuration() {
  return {
    cookies: { keys: ['test-idp-cookie-key'] },
    clients: [
      robot('fts-robot', 'client_secret_basic'),
      robot('fts-robot-post', 'client_secret_post'),
      robot('fts-robot-short', 'client_secret_basic'),
      robot('fts-robot-es256', 'client_secret_basic'),
      {
        client_id: 'fts-user',
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: ['https://localhost/callback'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      {
        // A user's client registered as confidential (as oidc-gen registers them).
        client_id: 'fts-user-confidential',
        client_secret: SECRET,
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: ['https://localhost/callback'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: signingKeys() },
    scopes: ['openid', 'offline_access'],
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: resourceServer,
      },
    },
    // WLCG profile claims, nbf (FTS 3.13 needs it) and the user's groups.
    extraTokenClaims: (ctx, token) => ({
      nbf: token.iat ?? Math.floor(Date.now() / 1000),
      'wlcg.ver': '1.0',
      ...(token.accountId ? { 'wlcg.groups': ['/dteam'] } : {}),
    }),
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    rotateRefreshToken: true,
    ttl: { RefreshToken: 24 * 3600, Grant: 24 * 3600 },
  };
}

async function seedRefreshToken(provider, { resource, scope, client: clientId = 'fts-user' }) {
  // resource: one URL or a list (the FTS endpoint and storage endpoints of one user).
  const resources = Array.isArray(resource) ? resource : [resource];
  const client = await provider.Client.find(clientId);
  const grant = new provider.Grant({ accountId: USER, clientId: client.clientId });
  grant.addOIDCScope('openid offline_access');
  for (const url of resources) grant.addResourceScope(url, scope);
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    accountId: USER,
    client,
    grantId,
    gty: 'authorization_code',
    resource: resources.length === 1 ? resources[0] : resources,
    scope: `openid offline_access ${scope}`,
  });
  return refreshToken.save();
}

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

async function basicOfAPostClient(provider, authorization) {
  // HTTP Basic from a client registered to send its secret in the form.
  if (!authorization || !authorization.startsWith('Basic ')) return false;
  const pair = Buffer.from(authorization.slice(6), 'base64').toString();
  const client = await provider.Client.find(decodeURIComponent(pair.split(':')[0]));
  return client?.tokenEndpointAuthMethod === 'client_secret_post';
}

function testRoutes(provider) {
  return async (ctx, next) => {
    if (ctx.path === '/token' && ctx.method === 'POST') {
      counts.token += 1;
      if (await basicOfAPostClient(provider, ctx.headers.authorization)) {
        // As INDIGO IAM and EGI Check-in do (oidc-provider itself takes either way).
        ctx.status = 401;
        ctx.body = { error: 'invalid_client', error_description: 'client_secret_post only' };
        return;
      }
    } else if (ctx.path === '/.well-known/openid-configuration') {
      counts.discovery += 1;
    } else if (ctx.path === '/test/counts') {
      ctx.body = counts;
      return;
    } else if (ctx.path === '/test/reset' && ctx.method === 'POST') {
      counts.token = 0;
      counts.discovery = 0;
      ctx.body = counts;
      return;
    } else if (ctx.path === '/test/refresh-token' && ctx.method === 'POST') {
      ctx.body = { refresh_token: await seedRefreshToken(provider, await readJson(ctx)) };
      return;
    }
    await next();
  };
}

let handler = (req, res) => res.writeHead(503).end();
const server = createServer(
  { cert: readFileSync(process.env.IDP_CERT), key: readFileSync(process.env.IDP_KEY) },
  (req, res) => handler(req, res),
);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `https://localhost:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.proxy = false;
  provider.use(testRoutes(provider));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
