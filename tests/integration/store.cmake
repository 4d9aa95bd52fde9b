# consumer/store: order per subject over concurrent writers, first evidence
# of a repeated alert id, replay, row rejection.
vigil_test(store_order LABEL integration TIMEOUT 120
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_store.c)
