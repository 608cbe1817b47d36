// gRPC server interceptors of the longview gRPC server.
//
// MalformedRequest: gRPC's synchronous server answers a request whose bytes are not a valid
// protobuf message of the method's request type with INTERNAL ("Message parsing failed"), which
// reads as a server bug. It is the client's error: this interceptor turns that answer into
// INVALID_ARGUMENT naming the method. The handler never runs for such a request.
//
//   grpc::ServerBuilder builder;
//   builder.experimental().SetInterceptorCreators(MakeServerInterceptors());
// Thread-safety: one interceptor per call, as gRPC creates them.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

namespace longview {

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MakeServerInterceptors();

}  // namespace longview
