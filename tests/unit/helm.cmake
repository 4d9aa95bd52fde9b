# The Helm chart (helm/vigil) and the Dockerfile (issue 6). Helm and the
# manifest validator's Go modules are installed by scripts/setup-helm; the
# tests fail (never skip) when they are missing.
vigil_script_test(helm_lint LABEL unit TIMEOUT 60
  COMMAND bash ${PROJECT_SOURCE_DIR}/tests/k8s/test_helm.sh lint)
vigil_script_test(helm_render LABEL unit TIMEOUT 120
  COMMAND bash ${PROJECT_SOURCE_DIR}/tests/k8s/test_helm.sh render)
vigil_script_test(dockerfile LABEL unit TIMEOUT 60
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/k8s/test_dockerfile.py)
