# common/pg and `vigil migrate`'s command line, no server needed.
vigil_test(test_pg_unit LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_pg_unit.c)
vigil_script_test(migrate_cli LABEL unit TIMEOUT 30
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_migrate_cli.sh)
