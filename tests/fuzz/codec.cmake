# libFuzzer target for the Avro codec.
vigil_fuzz_test(fuzz_codec SECONDS 20 LIBS vigil_avro)
target_include_directories(fuzz_codec PRIVATE ${PROJECT_SOURCE_DIR}/common/avro/internal)
