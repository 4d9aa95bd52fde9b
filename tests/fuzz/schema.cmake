# libFuzzer target for writer schemas from a Schema Registry: canonical
# form and fingerprint, avro-c's parse and resolution against the embedded
# readers, and decoding of a body with them. Input: SCHEMA-JSON [NUL BODY].
vigil_fuzz_test(fuzz_schema SECONDS 15 LIBS vigil_avro)
target_include_directories(fuzz_schema PRIVATE ${PROJECT_SOURCE_DIR}/common/avro/internal)
# See codec.cmake: avro-c's unaligned value layout.
set_tests_properties(fuzz_schema PROPERTIES ENVIRONMENT "LSAN_OPTIONS=use_unaligned=1")
