set(_py /usr/bin/python3)
set(_t ${CMAKE_CURRENT_SOURCE_DIR}/integration)
vigil_script_test(worker_pipeline LABEL integration TIMEOUT 400
  COMMAND ${_py} ${_t}/test_worker_pipeline.py normal 100000)
vigil_script_test(worker_pipeline_kill LABEL integration TIMEOUT 400
  COMMAND ${_py} ${_t}/test_worker_pipeline.py kill 100000)
vigil_script_test(worker_dlq LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_worker_dlq.py)
vigil_script_test(worker_pg_outage LABEL integration TIMEOUT 240
  COMMAND ${_py} ${_t}/test_worker_pg_outage.py)
vigil_script_test(worker_rules_reload LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_worker_rules_reload.py)

# The consumer-group engine driving the worker's real analysis, store and
# publisher threads: two in-process workers join and leave one group on
# librdkafka's mock cluster, with a 16-offset tracker per partition. Also
# labelled kit: scripts/test runs it under ThreadSanitizer.
vigil_test(group_threads LABEL integration TIMEOUT 180
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_group_threads.c LIBS vigil_testkafka)
set_tests_properties(group_threads PROPERTIES LABELS "integration;kit")
