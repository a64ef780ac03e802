# The verdict-coordinator daemon: its driver library (coordinator/server/) and binary.
# Included by coordinator/CMakeLists.txt.
verdict_library(verdict_coordinator_server
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/server/coordinator_handler.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/coordinator_handler_txn.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/fatal.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/metrics.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/metrics_http_server.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/node_options.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/participant_sender.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/peer_router.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/peer_sender.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_codec.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_handler.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_node.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_node_ready.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_node_snapshot.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/raft_node_txn.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/registry_handler.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/server/storage_writer.cc
  DEPS verdict_raft verdict_storage verdict_txn verdict_thrift verdict_rpc verdict_common
       spdlog::spdlog Boost::headers Threads::Threads)

verdict_binary(verdict-coordinator
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/main.cc
  DEPS verdict_coordinator_server Boost::program_options)

# Boost.Asio uses std::atomic_thread_fence, which GCC flags under -fsanitize=thread
# (-Wtsan, an error with -Werror); TSan still instruments everything else in that file.
if(VERDICT_TSAN AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/server/metrics_http_server.cc
    PROPERTIES COMPILE_OPTIONS -Wno-tsan)
endif()
