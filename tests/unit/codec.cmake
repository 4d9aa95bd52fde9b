# Avro codec (common/avro/codec.h): schemas, fingerprints, resolution, both
# framings, hostile input. No services.
vigil_test(test_codec LABEL unit TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_codec.c)
target_include_directories(test_codec PRIVATE ${PROJECT_SOURCE_DIR}/common/avro/internal)

# Interop with python-avro (Debian's python3-avro), both framings, both
# directions; a schema-registry double in the script. No services.
add_executable(codec_tool ${CMAKE_CURRENT_LIST_DIR}/codec_tool.c)
target_link_libraries(codec_tool PRIVATE vigil_avro)
target_include_directories(codec_tool PRIVATE ${PROJECT_SOURCE_DIR}/common/avro/internal)
vigil_warnings(codec_tool)
vigil_script_test(codec_interop LABEL unit TIMEOUT 60
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/codec_interop.py
          $<TARGET_FILE:codec_tool> ${PROJECT_SOURCE_DIR})

# bench/codec_bench.c: built here (not a test) so bench/ needs no
# CMakeLists.txt of its own yet. Run: build/tests/codec_bench
add_executable(codec_bench ${PROJECT_SOURCE_DIR}/bench/codec_bench.c)
target_link_libraries(codec_bench PRIVATE vigil_avro)
vigil_warnings(codec_bench)

# What avro-c does with the hostile bodies the codec's bounds walk refuses,
# unguarded: the evidence behind common/avro/avro_guard.c (README there).
# A tool, not a test: run build/tests/codec_avroc_probe.
add_executable(codec_avroc_probe ${CMAKE_CURRENT_LIST_DIR}/codec_avroc_probe.c)
target_link_libraries(codec_avroc_probe PRIVATE vigil_deps)
vigil_warnings(codec_avroc_probe)
