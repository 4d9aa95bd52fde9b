# libFuzzer targets for vigil mllp's parsers of untrusted bytes (issue 16):
# the HL7 v2 ER7 parser with everything that reads a parsed message, and
# the MLLP framer. Seeds: tests/fuzz/corpus/hl7 and tests/fuzz/corpus/mllp.
vigil_fuzz_test(fuzz_hl7 SECONDS 15 LIBS vigil_hospital m)
vigil_fuzz_test(fuzz_mllp SECONDS 10 LIBS vigil_hospital)
