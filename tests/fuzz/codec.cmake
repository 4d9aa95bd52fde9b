# libFuzzer target for the Avro codec.
vigil_fuzz_test(fuzz_codec SECONDS 20 LIBS vigil_common)
