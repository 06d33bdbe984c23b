// The Ebbflow API for TypeScript: the generated messages and service descriptors of
// proto/ebbflow/v1 (src/gen, by protoc-gen-es; do not edit), to use with a Connect transport:
//
//   import { createClient } from "@connectrpc/connect";
//   import { createConnectTransport } from "@connectrpc/connect-web";
//   import { ProfileService } from "@ebbflow/client";
//
//   const transport = createConnectTransport({
//     baseUrl: "https://ebbflow.example.com:7070",
//     interceptors: [(next) => (req) => { req.header.set("Authorization", `Bearer ${token}`); return next(req); }],
//   });
//   const profiles = createClient(ProfileService, transport);
//   const { profiles: list } = await profiles.listProfiles({});
export * from "./gen/ebbflow/v1/access_pb.js";
export * from "./gen/ebbflow/v1/agent_pb.js";
export * from "./gen/ebbflow/v1/audit_pb.js";
export * from "./gen/ebbflow/v1/cluster_pb.js";
export * from "./gen/ebbflow/v1/common_pb.js";
export * from "./gen/ebbflow/v1/controller_pb.js";
export * from "./gen/ebbflow/v1/measurement_pb.js";
export * from "./gen/ebbflow/v1/profile_pb.js";
export * from "./gen/ebbflow/v1/rollout_pb.js";
