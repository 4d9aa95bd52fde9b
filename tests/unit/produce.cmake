# vigil produce / vigil import, no services: NDJSON and CSV mapping with
# line numbers (hospital/obs_json, obs_input), FHIR resources and Bundles
# (hospital/fhir), the synthetic trial (hospital/trialgen), the import
# pipeline against librdkafka's in-process mock cluster (hospital/import),
# and the command lines with --emit-ndjson.
vigil_test(test_obs_input LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_obs_input.c)
vigil_test(test_fhir LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_fhir.c)
vigil_test(test_trialgen LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_trialgen.c)
vigil_test(test_import LABEL unit TIMEOUT 60 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_import.c)
vigil_script_test(produce_cli LABEL unit TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_produce_cli.sh)
