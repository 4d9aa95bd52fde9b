# consumer/clean.c: UCUM unit normalisation and plausibility (no services).
vigil_test(test_clean LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_clean.c)
