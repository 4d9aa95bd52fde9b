# libFuzzer target for the FHIR JSON, NDJSON and CSV mappers.
vigil_fuzz_test(fuzz_fhir SECONDS 15 LIBS vigil_hospital)
