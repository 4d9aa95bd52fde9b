# vigil produce / vigil import against the real Kafka of scripts/services:
# records land with the right key and decode back equal; an import
# interrupted with SIGINT reports exactly what is on the topic and resumes
# with --skip to every record exactly once. Each test makes its own topic.
vigil_script_test(produce_kafka LABEL integration TIMEOUT 90
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_produce_import.py produce)
vigil_script_test(import_resume LABEL integration TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_produce_import.py import)
