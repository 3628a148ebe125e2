// A Node.js client built from protos/ alone: it calls SearchVideos with bad requests and
// decodes the google.rpc.Status each failure carries in `grpc-status-details-bin`.
//
// Usage: node search_errors.mjs TARGET PROTOS_DIR
// Prints one JSON line per request: the status code, and the ErrorInfo's reason, domain and
// metadata, plus the type URLs of every detail.

import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const [target, protosDir] = process.argv.slice(2);

const definition = protoLoader.loadSync("clipmesh/orchestrator/v1/search.proto", {
  includeDirs: [protosDir],
  keepCase: true,
  defaults: true,
  oneofs: true,
});
const api = grpc.loadPackageDefinition(definition);
const search = new api.clipmesh.orchestrator.v1.SearchService(
  target,
  grpc.credentials.createInsecure(),
);

// The error contract's protos, from protos/ too (google/protobuf/*.proto are protobufjs's own).
const statusRoot = new protobuf.Root();
statusRoot.resolvePath = (_origin, file) => path.join(protosDir, file);
statusRoot.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
const Status = statusRoot.lookupType("google.rpc.Status");
const ErrorInfo = statusRoot.lookupType("google.rpc.ErrorInfo");

function decodeFailure(error) {
  const [details] = error.metadata.get("grpc-status-details-bin");
  const status = Status.decode(details);
  const answer = {
    code: error.code,
    status_code: status.code,
    message: status.message,
    detail_types: status.details.map((any) => any.type_url),
  };
  for (const any of status.details) {
    if (any.type_url === "type.googleapis.com/google.rpc.ErrorInfo") {
      const info = ErrorInfo.decode(any.value);
      Object.assign(answer, { reason: info.reason, domain: info.domain, metadata: info.metadata });
    }
  }
  return answer;
}

const requests = [
  { parts: [{ text: "a lighthouse at dusk" }], top_k: 100000 },
  { parts: [{ text: "ok" }, { image: Buffer.from("not an image") }] },
];

const deadline = () => new Date(Date.now() + 20000);
for (const request of requests) {
  const answer = await new Promise((resolve) => {
    search.SearchVideos(request, { deadline: deadline() }, (error) =>
      resolve(error ? decodeFailure(error) : { code: 0 }),
    );
  });
  console.log(JSON.stringify(answer));
}
search.close();
