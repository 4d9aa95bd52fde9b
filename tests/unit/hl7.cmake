# HL7 v2 and MLLP (issue 16), no services: the ER7 parser, the MLLP framer,
# HL7 times and facility time zones, the facility mapping, ORU^R01 mapping
# of vendor-shaped messages (tests/hl7/messages), ACK/ERR, redaction of
# dead letters, batch files.
vigil_test(test_hl7 LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_hl7.c LIBS m)
# vigil mllp's command line: --help and the settings it refuses at start.
vigil_script_test(mllp_cli LABEL unit TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_mllp_cli.sh)
# bench/mllp's load generator (bench/mllp_client.c): built here, not a test,
# as codec_bench is. Run through bench/mllp.
add_executable(mllp_bench_client ${PROJECT_SOURCE_DIR}/bench/mllp_client.c)
target_link_libraries(mllp_bench_client PRIVATE Threads::Threads)
vigil_warnings(mllp_bench_client)
