# verdict-pg-rm-bench: branch prepare+commit rate through the PostgreSQL resource manager
# next to the raw pgbench two-phase ceiling (bench/pg_rm_bench.cc). Included from
# bench/CMakeLists.txt; built only when the PostgreSQL RM and the PgServer fixture are.
if(TARGET verdict_participant_pg AND TARGET verdict_test_pg)
  verdict_binary(verdict-pg-rm-bench
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/pg_rm_bench.cc
    DEPS verdict_participant_pg verdict_test_pg Threads::Threads)
  target_compile_definitions(verdict-pg-rm-bench PRIVATE VERDICT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
