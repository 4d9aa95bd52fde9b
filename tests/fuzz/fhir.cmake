# libFuzzer target for the FHIR JSON, NDJSON and CSV mappers
# (VIGIL_FUZZ builds only; see codec.cmake for the pattern).
add_executable(fuzz_fhir ${CMAKE_CURRENT_LIST_DIR}/fuzz_fhir.c)
target_link_libraries(fuzz_fhir PRIVATE vigil_common)
target_link_options(fuzz_fhir PRIVATE -fsanitize=fuzzer)
vigil_warnings(fuzz_fhir)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/fhir.
set(_fuzz_fhir_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fhir)
add_test(NAME fuzz_fhir
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=15 -rss_limit_mb=1024 \"$1\""
          fuzz_fhir ${_fuzz_fhir_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/fhir
          $<TARGET_FILE:fuzz_fhir>)
set_tests_properties(fuzz_fhir PROPERTIES LABELS fuzz TIMEOUT 120)
