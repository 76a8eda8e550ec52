// A real OpenID Connect provider on loopback (the npm `oidc-provider`
// package with its development login and consent pages), standing in for
// a company IdP and for an upstream API's OAuth server in berth's tests.
// Usage: node oidc_provider.mjs PORT CLIENTS_JSON ACCESS_TTL_SECONDS
//   CLIENTS_JSON: [{"client_id", "client_secret", "redirect_uris": [...]}]
// Any login name signs in as the account of that name (`sub`), whose
// groups claim is ["team-<name>"]. Prints "ready <issuer>" when listening.
import path from "node:path";
import { pathToFileURL } from "node:url";

const nm = process.env.BERTH_NODE_MODULES;
const { default: Provider } = await import(pathToFileURL(path.join(nm, "oidc-provider/lib/index.js")).href);

const [port, clients, accessTtl] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: JSON.parse(clients).map((c) => ({
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    ...c,
  })),
  pkce: { required: () => true },
  scopes: ["openid", "offline_access", "email", "profile", "groups", "repo"],
  claims: { openid: ["sub"], email: ["email"], groups: ["groups"], profile: ["name"] },
  conformIdTokenClaims: false,
  ttl: { AccessToken: Number(accessTtl), Session: 3600, Grant: 3600, Interaction: 600, RefreshToken: 86400 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.test`, groups: [`team-${id}`], name: id }),
  }),
  features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`ready ${issuer}`));
