# libFuzzer target for the Avro codec (VIGIL_FUZZ builds only: the whole
# tree is then compiled with -fsanitize=fuzzer-no-link,address,undefined).
add_executable(fuzz_codec ${CMAKE_CURRENT_LIST_DIR}/fuzz_codec.c)
target_link_libraries(fuzz_codec PRIVATE vigil_common)
target_link_options(fuzz_codec PRIVATE -fsanitize=fuzzer)
target_compile_definitions(fuzz_codec PRIVATE VIGIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
vigil_warnings(fuzz_codec)

# The run adds what it finds to its corpus: work on a fresh copy in the
# build tree, never in tests/fuzz/corpus/codec.
set(_fuzz_codec_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/codec)
add_test(NAME fuzz_codec
  COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && cp \"$2\"/* \"$1\"/ && exec \"$3\" -max_total_time=20 -rss_limit_mb=1024 \"$1\""
          fuzz_codec ${_fuzz_codec_corpus} ${CMAKE_CURRENT_LIST_DIR}/corpus/codec
          $<TARGET_FILE:fuzz_codec>)
set_tests_properties(fuzz_codec PROPERTIES LABELS fuzz TIMEOUT 120)
