# Fault scenarios for the worker (issue 7, items 1-3). They need the local
# services (scripts/services up) and stop/start them: ctest runs tests one at
# a time, and every test puts a stopped service back in a finally block.
set(_py /usr/bin/python3)
set(_f ${CMAKE_CURRENT_SOURCE_DIR}/fault)
vigil_script_test(fault_broker_restart LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_broker_restart.py)
vigil_script_test(fault_pg_slow LABEL fault TIMEOUT 240
  COMMAND ${_py} ${_f}/test_pg_slow.py)
vigil_script_test(fault_pg_restart_batch LABEL fault TIMEOUT 180
  COMMAND ${_py} ${_f}/test_pg_restart_batch.py)
vigil_test(fault_mock_cluster LABEL fault TIMEOUT 240
  SOURCES ${_f}/test_mock_cluster.c LIBS vigil_testkafka)
vigil_test(fault_publisher_rebuild LABEL fault TIMEOUT 120
  SOURCES ${_f}/test_publisher_rebuild.c)
# The soak's short CI variant (bench/soak runs 10 minutes by default); a
# sanitizer build is offered proportionally less load.
math(EXPR _soak_rate "2000 / ${VIGIL_TIMEOUT_SCALE}")
vigil_script_test(fault_soak_short LABEL fault TIMEOUT 150
  COMMAND ${PROJECT_SOURCE_DIR}/bench/soak --seconds 45 --warmup 10 --rate ${_soak_rate} --check)
