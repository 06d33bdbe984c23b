// A smoke test of the generated client against a running controller, as a portal would call
// it: Connect JSON over HTTPS with a bearer token. Run by controller/tsclient_test.go:
//
//   node dist/smoke.js <base URL> <token file> <CA file>
//
// It lists profiles and prints one JSON line: {"profiles":["name@revision",...]}; any error
// exits 1 with the Connect code and message.
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ProfileService } from "./index.js";

const [baseUrl, tokenFile, caFile] = process.argv.slice(2);
if (!baseUrl || !tokenFile || !caFile) {
  console.error("usage: node dist/smoke.js <base URL> <token file> <CA file>");
  process.exit(2);
}
const token = readFileSync(tokenFile, "utf8").trim();
const bearer: Interceptor = (next) => (req) => {
  req.header.set("Authorization", `Bearer ${token}`);
  return next(req);
};
const transport = createConnectTransport({
  baseUrl,
  httpVersion: "1.1",
  nodeOptions: { ca: readFileSync(caFile) },
  interceptors: [bearer],
});
const profiles = createClient(ProfileService, transport);
try {
  const res = await profiles.listProfiles({});
  console.log(JSON.stringify({ profiles: res.profiles.map((p) => `${p.name}@${p.revision}`) }));
} catch (err) {
  const e = ConnectError.from(err);
  console.error(`smoke: ${Code[e.code]}: ${e.rawMessage}`);
  process.exit(1);
}
