# The demo brings up its own services and uses the normal build's binary, so
# it carries the extra label `demo` and scripts/test runs it once (not again
# in the sanitizer build).
vigil_script_test(demo_small LABEL integration demo TIMEOUT 300
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_demo.sh)
