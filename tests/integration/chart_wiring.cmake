# The chart's wiring executed (issue 17): helm/vigil rendered, its migration
# Job and worker and notifier Deployments run from the image scripts/image
# built, against the local services. Label image: it runs the image, not
# this build's binary, so the sanitizer runs leave it out.
vigil_script_test(chart_wiring LABEL integration image TIMEOUT 240
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/k8s/test_chart_wiring.py all)
