# libFuzzer target for writer schemas from a Schema Registry: parse,
# canonical form and fingerprint, resolution against the embedded readers,
# and decoding of a body with the resulting plans (VIGIL_FUZZ builds only;
# see codec.cmake for the pattern). Input: SCHEMA-JSON [NUL BODY].
add_executable(fuzz_schema ${CMAKE_CURRENT_LIST_DIR}/fuzz_schema.c)
target_link_libraries(fuzz_schema PRIVATE vigil_common)
target_link_options(fuzz_schema PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_schema)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/schema.
set(_fuzz_schema_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/schema)
add_test(NAME fuzz_schema
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_schema ${_fuzz_schema_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/schema
          $<TARGET_FILE:fuzz_schema>)
set_tests_properties(fuzz_schema PROPERTIES LABELS fuzz TIMEOUT 120)
