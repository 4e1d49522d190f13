// A real OpenID Connect provider for the browser tests: npm's oidc-provider
// (pinned in package-lock.json) on a loopback port, with its built-in login
// and consent pages (devInteractions: any password is accepted for a known
// login), two people, their groups, and one confidential client: the
// console.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

export const CLIENT_ID = 'latchkey-console';
export const CLIENT_SECRET = 'browser-test-console-secret';

const PEOPLE = {
  alice: { email: 'alice@example.com', groups: ['platform'] },
  bob: { email: 'bob@example.com', groups: ['sales'] },
};

export class IdentityProvider {
  // `port`: where it listens; `redirectUrl`: the console's callback.
  constructor(port, redirectUrl) {
    this.issuer = `http://127.0.0.1:${port}`;
    this.port = port;
    // Short-lived mode: ID tokens of 65 s and no refresh token, so a session
    // runs out within seconds of signing in (the console refreshes 60 s
    // ahead of expiry, and cannot).
    this.shortLived = false;
    const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    this.provider = new Provider(this.issuer, {
      clients: [{
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirectUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      }],
      jwks: { keys: [{ ...signing.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig',
                       alg: 'RS256' }] },
      cookies: { keys: ['browser-test-cookie-key'] },
      scopes: ['openid', 'offline_access', 'email', 'profile'],
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['groups'] },
      // The claims of the granted scopes go in the ID token itself, which is
      // all the console and the authority read.
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true } },
      pkce: { required: () => true },
      ttl: { IdToken: () => (this.shortLived ? 65 : 3600) },
      issueRefreshToken: async (ctx, client, code) => !this.shortLived &&
          client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
      findAccount: async (ctx, id) => {
        const person = PEOPLE[id];
        if (!person) return undefined;
        return {
          accountId: id,
          claims: async () => ({ sub: id, email: person.email, email_verified: true,
                                 groups: person.groups }),
        };
      },
    });
  }

  start() {
    return new Promise((resolve) => {
      this.server = this.provider.listen(this.port, '127.0.0.1', resolve);
    });
  }

  stop() {
    if (!this.server) return Promise.resolve();
    return new Promise((resolve) => {
      this.server.close(resolve);
      this.server.closeAllConnections();
    });
  }
}
