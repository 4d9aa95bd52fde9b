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
