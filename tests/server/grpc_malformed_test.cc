// Bytes that are not a valid protobuf message of a method's request type are the client's
// error: INVALID_ARGUMENT naming the method, never INTERNAL; the server keeps serving.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "scheduler/generator.h"
#include "gtest/gtest.h"
#include "proto/longview.grpc.pb.h"
#include "scheduler/engine_loop.h"
#include "server/grpc_service.h"

namespace longview {
namespace {

grpc::Status RawCall(int port, const std::string& method, const std::string& bytes,
                     std::string* reply = nullptr) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (reply != nullptr && status.ok()) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(response.Dump(&slices).ok());
    for (const grpc::Slice& s : slices)
      reply->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

TEST(GrpcMalformedTest, GarbageRequestIsInvalidArgument) {
  auto lm = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama");
  ASSERT_TRUE(lm.ok()) << lm.status();
  EngineLoopOptions opt;
  opt.num_kv_pages = 64;
  EngineLoop loop(std::shared_ptr<const LoadedModel>(std::move(*lm)), opt);
  loop.Start();
  auto server = StartGrpcServer(&loop, "127.0.0.1", 0, "", "llama");
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  // Field 1 as a length-delimited value longer than the message; then a field of wire type 7.
  for (const std::string& garbage :
       {std::string("\x0a\xff\x01zz", 5), std::string("\x0f\x01", 2)}) {
    for (const char* method :
         {"/longview.v1.Generation/Tokenize", "/longview.v1.Generation/ListModels"}) {
      SCOPED_TRACE(method);
      grpc::Status s = RawCall(port, method, garbage);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
      EXPECT_NE(s.error_message().find(method), std::string::npos) << s.error_message();
    }
  }
  // A server-streaming method: the generic unary call reads its one message or its status.
  grpc::Status gen = RawCall(port, "/longview.v1.Generation/Generate", std::string("\x12\x80", 2));
  EXPECT_EQ(gen.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << gen.error_message();
  // A valid request afterwards is served.
  v1::TokenizeRequest ok;
  ok.set_text("Once upon a time");
  std::string reply;
  grpc::Status good =
      RawCall(port, "/longview.v1.Generation/Tokenize", ok.SerializeAsString(), &reply);
  EXPECT_TRUE(good.ok()) << good.error_message();
  v1::TokenizeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(reply));
  EXPECT_GT(parsed.token_ids_size(), 0);
  (*server)->Shutdown();
  loop.Stop();
}

}  // namespace
}  // namespace longview
