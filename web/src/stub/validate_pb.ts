// Build-time stand-in for clients/ts/src/gen/buf/validate/validate_pb.ts (see build.mjs).
//
// The generated ebbflow files import buf/validate only as a descriptor dependency: their
// fields carry buf.validate options, which the dashboard never reads (they stay unknown
// fields of the options). The real file embeds the whole protovalidate descriptor (about
// 70 KB minified); this one is an empty file of the same name and package, which is all the
// dependents' descriptors need to resolve. Typecheck still uses the real file.
import type { GenFile } from "@bufbuild/protobuf/codegenv2";
import { fileDesc } from "@bufbuild/protobuf/codegenv2";

// FileDescriptorProto { name: "buf/validate/validate.proto", package: "buf.validate" }.
export const file_buf_validate_validate: GenFile = /*@__PURE__*/ fileDesc(
  "ChtidWYvdmFsaWRhdGUvdmFsaWRhdGUucHJvdG8SDGJ1Zi52YWxpZGF0ZQ",
);
