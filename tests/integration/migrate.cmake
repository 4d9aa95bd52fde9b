# `vigil migrate` and common/pg against the real PostgreSQL of
# scripts/services (VIGIL_PG_CONNINFO); each test uses private schemas.
vigil_script_test(migrate LABEL integration TIMEOUT 60
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_migrate.sh)
vigil_test(test_pg LABEL integration TIMEOUT 30
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_pg.c)
