# alerting/directory_file.c: `vigil directory import`'s YAML reader, every
# problem with its line (issue #15). No services.
vigil_test(test_directory_file LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_directory_file.c)
