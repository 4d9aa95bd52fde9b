// vigil-k8s-validate checks the output of `helm template helm/vigil`.
//
//	helm template vigil helm/vigil [-f values.yaml] | vigil-k8s-validate [flags]
//
// Every manifest is decoded strictly against its official type (client-go's
// scheme; unknown, misspelt or duplicated fields are errors), then the chart's
// promises are asserted: probes, security contexts and resources on every
// vigil container, the rules ConfigMap mounted into the worker as a directory,
// replicas never above the topic's partitions, credentials never in a
// ConfigMap or a literal env value, a drain grace shorter than the pod's
// termination grace, and the migration Job as a pre-install/pre-upgrade hook.
// The console (component console) is held to the same pod promises without a
// topic bound, must have a Service and a PodDisruptionBudget of its own and
// an HPA that keeps two replicas; an Ingress must serve TLS for every host
// and route only the console's public paths (/console/, /api/v1/, /ack/,
// /sms/inbound) by Prefix or Exact, never /metrics, /healthz or /readyz.
// A NetworkPolicy over the console needs /metrics on a port of its own,
// admits named peers only (never everyone) to named ports, never the same
// peers to the pages and /metrics, and restricts egress to named ports and
// destinations (DNS excepted); the console's Service ports reach the pages
// (http) and /metrics (metrics).
// With -secret-files (the chart's secrets.mode files), no container takes an
// environment variable from a Secret at all: every credential is a file.
//
// It prints one line per failed check and a summary "N passed, N failed";
// exit status 0 when every check passed, 1 otherwise, 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const componentLabel = "app.kubernetes.io/component"

// Annotations the chart puts on each consumer Deployment: the topic it
// consumes and that topic's partition count, the bound on its replicas.
const (
	topicAnnotation      = "vigil.io/topic"
	partitionsAnnotation = "vigil.io/topic-partitions"
)

type report struct {
	passed, failed int
}

func (r *report) check(ok bool, format string, args ...any) {
	if ok {
		r.passed++
		return
	}
	r.failed++
	fmt.Printf("FAIL: "+format+"\n", args...)
}

type manifests struct {
	deployments     []*appsv1.Deployment
	jobs            []*batchv1.Job
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	services        []*corev1.Service
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
	ingresses       []*networkingv1.Ingress
	scaledObjects   []*scaledObject
	serviceMonitors []*serviceMonitor
	kinds           map[string]int
}

func main() {
	in := flag.String("f", "-", "rendered manifests (multi-document YAML); - for stdin")
	expect := flag.String("expect", "", "comma-separated kinds that must be present (e.g. ScaledObject,ServiceMonitor)")
	vigil := flag.String("vigil", "", "vigil binary: when set, the rendered rules are checked with `vigil rules check`")
	secretFiles := flag.Bool("secret-files", false, "rendered with secrets.mode files: no env var may come from a Secret (secretKeyRef or envFrom)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: vigil-k8s-validate [-f FILE] [-expect KINDS] [-vigil BINARY] [-secret-files]")
		os.Exit(2)
	}
	var data []byte
	var err error
	if *in == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*in)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil-k8s-validate: could not read %s: %v\n", *in, err)
		os.Exit(2)
	}

	r := &report{}
	m := decodeAll(r, data)
	for _, k := range strings.Split(*expect, ",") {
		if k = strings.TrimSpace(k); k != "" {
			r.check(m.kinds[k] > 0, "expected at least one %s in the rendered chart", k)
		}
	}
	checkAll(r, m, *vigil)
	if *secretFiles {
		checkSecretsAsFiles(r, m)
	}
	fmt.Printf("vigil-k8s-validate: %d manifests\n", sum(m.kinds))
	fmt.Printf("%d passed, %d failed\n", r.passed, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}

func sum(kinds map[string]int) int {
	n := 0
	for _, v := range kinds {
		n += v
	}
	return n
}

// decodeAll splits the stream into documents and decodes each strictly.
func decodeAll(r *report, data []byte) *manifests {
	m := &manifests{kinds: map[string]int{}}
	// A strict codec: unknown and duplicate fields are errors, and field
	// names match case-sensitively (encoding/json alone would accept
	// "RunAsNonRoot" for "runAsNonRoot").
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	decoder := codecs.UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.check(false, "document %d: could not split YAML: %v", n, err)
			break
		}
		if isBlank(doc) {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			r.check(false, "document %d: not YAML: %v", n, err)
			continue
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil || tm.Kind == "" || tm.APIVersion == "" {
			r.check(false, "document %d: no apiVersion/kind (%v)", n, err)
			continue
		}
		gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
		where := fmt.Sprintf("document %d (%s %s)", n, tm.APIVersion, tm.Kind)
		switch {
		case gvk == schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}:
			var so scaledObject
			if decodeCRD(r, where, js, &so) {
				m.scaledObjects = append(m.scaledObjects, &so)
			}
		case gvk == schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}:
			var sm serviceMonitor
			if decodeCRD(r, where, js, &sm) {
				m.serviceMonitors = append(m.serviceMonitors, &sm)
			}
		case scheme.Scheme.Recognizes(gvk):
			obj, _, err := decoder.Decode(doc, nil, nil)
			r.check(err == nil, "%s: strict decoding against the official type failed: %v", where, err)
			if err != nil {
				continue
			}
			m.add(obj)
		default:
			r.check(false, "%s: a kind this validator does not know; add it here first", where)
			continue
		}
		m.kinds[tm.Kind]++
	}
	return m
}

func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

func decodeCRD(r *report, where string, js []byte, into any) bool {
	strictErrs, err := sigsjson.UnmarshalStrict(js, into, sigsjson.DisallowUnknownFields)
	if err == nil && len(strictErrs) > 0 {
		err = errors.Join(strictErrs...)
	}
	r.check(err == nil, "%s: strict decoding against the CRD's fields failed: %v", where, err)
	return err == nil
}

func (m *manifests) add(obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		m.deployments = append(m.deployments, o)
	case *batchv1.Job:
		m.jobs = append(m.jobs, o)
	case *corev1.ConfigMap:
		m.configMaps = append(m.configMaps, o)
	case *corev1.Secret:
		m.secrets = append(m.secrets, o)
	case *corev1.Service:
		m.services = append(m.services, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.hpas = append(m.hpas, o)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, o)
	case *networkingv1.NetworkPolicy:
		m.netpols = append(m.netpols, o)
	case *networkingv1.Ingress:
		m.ingresses = append(m.ingresses, o)
	}
}

func checkAll(r *report, m *manifests, vigil string) {
	worker := m.deployment("worker")
	notifier := m.deployment("notifier")
	r.check(worker != nil, "no Deployment with %s=worker", componentLabel)
	r.check(notifier != nil, "no Deployment with %s=notifier", componentLabel)
	for _, d := range m.deployments {
		checkConsumerDeployment(r, d)
	}
	if worker != nil {
		checkRulesMount(r, m, worker, vigil)
	}
	checkScaling(r, m)
	checkMigrationJob(r, m)
	checkNoInlinedSecrets(r, m)
	checkServices(r, m)
	checkPDBs(r, m)
	checkNetworkPolicies(r, m)
	checkConsole(r, m)
	checkConsoleNetworkPolicy(r, m)
	checkIngresses(r, m)
	if vigil != "" {
		checkAgainstBinary(r, m, vigil)
	}
}

// namedPod is a pod template and where it comes from, for messages.
type namedPod struct {
	where string
	spec  *corev1.PodSpec
}

// podSpecs: the pod templates of every Deployment and Job rendered.
func podSpecs(m *manifests) []namedPod {
	var pods []namedPod
	for _, d := range m.deployments {
		pods = append(pods, namedPod{"Deployment " + d.Name, &d.Spec.Template.Spec})
	}
	for _, j := range m.jobs {
		pods = append(pods, namedPod{"Job " + j.Name, &j.Spec.Template.Spec})
	}
	return pods
}

// checkAgainstBinary: every VIGIL_* variable and every config-file setting
// the chart gives a vigil command is one that command documents in its
// --help, so a renamed setting in the program cannot leave the chart
// silently configuring nothing.
func checkAgainstBinary(r *report, m *manifests, vigil string) {
	pods := podSpecs(m)
	for _, p := range pods {
		for _, c := range p.spec.Containers {
			args := append(append([]string{}, c.Command...), c.Args...)
			if len(args) == 0 {
				continue
			}
			cmd := args[0]
			out, err := exec.Command(vigil, cmd, "--help").CombinedOutput()
			help := string(out)
			r.check(err == nil, "%s: `vigil %s --help` failed: %v", p.where, cmd, err)
			for _, e := range c.Env {
				name := strings.TrimSuffix(e.Name, "_FILE")
				if !strings.HasPrefix(name, "VIGIL_") || strings.HasPrefix(name, "VIGIL_KAFKA_PROP_") {
					continue
				}
				r.check(strings.Contains(help, name), "%s container %s: `vigil %s --help` does not know %s", p.where, c.Name, cmd, e.Name)
			}
			cfg, ok := envValue(&c, "VIGIL_CONFIG")
			if !ok {
				continue
			}
			text := configFile(m, p.spec, &c, cfg)
			r.check(text != "", "%s container %s: VIGIL_CONFIG %s is not a key of a rendered ConfigMap", p.where, c.Name, cfg)
			var settings map[string]any
			if err := yaml.Unmarshal([]byte(text), &settings); err != nil {
				r.check(false, "%s: %s is not YAML: %v", p.where, cfg, err)
				continue
			}
			for k := range settings {
				if k == "kafka" {
					continue
				}
				known := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(k) + `\s`).MatchString(help)
				r.check(known, "%s: %s sets %q, a setting `vigil %s --help` does not list", p.where, cfg, k, cmd)
			}
		}
	}
}

// configFile returns the text of the ConfigMap key mounted at path.
func configFile(m *manifests, spec *corev1.PodSpec, c *corev1.Container, file string) string {
	for _, vm := range c.VolumeMounts {
		if !strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				if cm := m.configMapNamed(v.ConfigMap.Name); cm != nil {
					return cm.Data[path.Base(file)]
				}
			}
		}
	}
	return ""
}

func (m *manifests) deployment(component string) *appsv1.Deployment {
	for _, d := range m.deployments {
		if d.Labels[componentLabel] == component {
			return d
		}
	}
	return nil
}

func (m *manifests) deploymentNamed(name string) *appsv1.Deployment {
	for _, d := range m.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func (m *manifests) configMapNamed(name string) *corev1.ConfigMap {
	for _, c := range m.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// partitions returns the partition count a consumer Deployment declares.
func partitions(r *report, d *appsv1.Deployment) (int32, bool) {
	s, ok := d.Annotations[partitionsAnnotation]
	r.check(ok, "Deployment %s: no %s annotation, so its replica bound is unknown", d.Name, partitionsAnnotation)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	r.check(err == nil && n > 0, "Deployment %s: %s=%q is not a positive integer", d.Name, partitionsAnnotation, s)
	return int32(n), err == nil && n > 0
}

func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// flagValue finds --name VALUE or --name=VALUE in the container's args.
func flagValue(c *corev1.Container, name string) (string, bool) {
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// checkConsumerDeployment: the worker or notifier pod promises.
func checkConsumerDeployment(r *report, d *appsv1.Deployment) {
	component := d.Labels[componentLabel]
	where := "Deployment " + d.Name
	spec := &d.Spec.Template.Spec
	checkPodSecurity(r, where, spec)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	r.check(err == nil && !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)),
		"%s: selector must be non-empty and match its own pod template", where)

	// The console is neither consumer nor producer: no topic bounds it.
	if !isConsole(d) {
		if p, ok := partitions(r, d); ok && d.Spec.Replicas != nil {
			r.check(*d.Spec.Replicas <= p, "%s: replicas %d exceed the topic's %d partitions", where, *d.Spec.Replicas, p)
		}
	}
	httpEnv := map[string]string{"worker": "VIGIL_HTTP_ADDR", "notifier": "VIGIL_NOTIFIER_HTTP_ADDR", "console": "VIGIL_CONSOLE_ADDR"}[component]
	httpFlag := "http"
	if isConsole(d) {
		httpFlag = "listen"
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		// The HTTP address must listen beyond loopback, on the probed port.
		addr, ok := flagValue(c, httpFlag)
		if !ok && httpEnv != "" {
			addr, ok = envValue(c, httpEnv)
		}
		r.check(ok, "%s: no --%s flag or %s: vigil would listen on 127.0.0.1 only and every probe would fail", cw, httpFlag, httpEnv)
		host, port := addr, ""
		if i := strings.LastIndex(addr, ":"); i >= 0 {
			host, port = addr[:i], addr[i+1:]
		}
		r.check(ok && host != "127.0.0.1" && host != "localhost" && host != "[::1]",
			"%s: HTTP address %q is loopback-only: probes and scrapes from outside the pod fail", cw, addr)
		checkProbe(r, cw, c, c.LivenessProbe, "liveness", "/healthz", port)
		checkProbe(r, cw, c, c.ReadinessProbe, "readiness", "/readyz", port)
	}

	// terminationGracePeriodSeconds must outlast the drain grace, or SIGKILL
	// lands before offsets are committed and messages are reprocessed.
	grace := int64(25) // vigil's default
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if s, ok := flagValue(c, "grace"); ok {
			grace, _ = strconv.ParseInt(s, 10, 64)
		} else if s, ok := envValue(c, "VIGIL_GRACE"); ok {
			g, err := strconv.ParseInt(s, 10, 64)
			r.check(err == nil, "%s: VIGIL_GRACE=%q is not an integer", where, s)
			grace = g
		}
	}
	tgp := spec.TerminationGracePeriodSeconds
	r.check(tgp != nil && *tgp > grace,
		"%s: terminationGracePeriodSeconds (%v) must be longer than the drain grace (%d s)", where, ptrString(tgp), grace)
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func checkProbe(r *report, cw string, c *corev1.Container, p *corev1.Probe, kind, path, addrPort string) {
	r.check(p != nil && p.HTTPGet != nil, "%s: no HTTP %s probe", cw, kind)
	if p == nil || p.HTTPGet == nil {
		return
	}
	r.check(p.HTTPGet.Path == path, "%s: %s probe path is %q, want %q", cw, kind, p.HTTPGet.Path, path)
	port, ok := resolvePort(c, p.HTTPGet.Port.String())
	r.check(ok, "%s: %s probe port %s is not a port of the container", cw, kind, p.HTTPGet.Port.String())
	r.check(!ok || strconv.Itoa(int(port)) == addrPort,
		"%s: %s probe port %d is not the port vigil listens on (%s)", cw, kind, port, addrPort)
}

// resolvePort maps a port name or number to one of the container's ports.
func resolvePort(c *corev1.Container, p string) (int32, bool) {
	for _, cp := range c.Ports {
		if cp.Name == p || strconv.Itoa(int(cp.ContainerPort)) == p {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// checkPodSecurity: the restricted Pod Security Standard, plus resources
// and no service account token (vigil never calls the API server).
func checkPodSecurity(r *report, where string, spec *corev1.PodSpec) {
	psc := spec.SecurityContext
	r.check(psc != nil, "%s: no pod securityContext", where)
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	r.check(psc.RunAsUser == nil || *psc.RunAsUser != 0, "%s: pod runAsUser is 0 (root)", where)
	r.check(spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken,
		"%s: automountServiceAccountToken must be false", where)
	r.check(!spec.HostNetwork && !spec.HostPID && !spec.HostIPC, "%s: uses a host namespace", where)
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	r.check(len(all) > 0, "%s: no containers", where)
	for i := range all {
		c := &all[i]
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		sc := c.SecurityContext
		r.check(sc != nil, "%s: no securityContext", cw)
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
			(sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		r.check(nonRoot, "%s: runAsNonRoot is not true (container or pod)", cw)
		r.check(sc.RunAsUser == nil || *sc.RunAsUser != 0, "%s: runAsUser is 0 (root)", cw)
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		r.check(seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault,
			"%s: seccomp profile is not RuntimeDefault", cw)
		if psc.SeccompProfile != nil {
			r.check(psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
				"%s: pod seccomp profile is %s, want RuntimeDefault", where, psc.SeccompProfile.Type)
		}
		r.check(sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
			"%s: allowPrivilegeEscalation must be false", cw)
		r.check(sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
			"%s: readOnlyRootFilesystem must be true", cw)
		r.check(sc.Privileged == nil || !*sc.Privileged, "%s: privileged", cw)
		dropAll := false
		if sc.Capabilities != nil {
			for _, d := range sc.Capabilities.Drop {
				dropAll = dropAll || d == "ALL"
			}
			r.check(len(sc.Capabilities.Add) == 0, "%s: adds capabilities %v", cw, sc.Capabilities.Add)
		}
		r.check(dropAll, "%s: capabilities must drop ALL", cw)
		req, lim := c.Resources.Requests, c.Resources.Limits
		_, cpu := req[corev1.ResourceCPU]
		_, mem := req[corev1.ResourceMemory]
		_, memLim := lim[corev1.ResourceMemory]
		r.check(cpu && mem, "%s: resources.requests must set cpu and memory", cw)
		r.check(memLim, "%s: resources.limits must set memory", cw)
	}
}

// checkRulesMount: the worker reads the rules from a ConfigMap mounted as a
// directory. A subPath mount never sees ConfigMap updates (kubelet swaps a
// symlink in the directory), so hot reload would silently stop working.
func checkRulesMount(r *report, m *manifests, d *appsv1.Deployment, vigil string) {
	where := "Deployment " + d.Name
	spec := &d.Spec.Template.Spec
	for i := range spec.Containers {
		c := &spec.Containers[i]
		rules := "/etc/vigil/rules.yaml" // vigil's default
		if v, ok := flagValue(c, "rules"); ok {
			rules = v
		} else if v, ok := envValue(c, "VIGIL_RULES"); ok {
			rules = v
		}
		dir, file := path.Split(rules)
		dir = strings.TrimSuffix(dir, "/")
		var mount *corev1.VolumeMount
		for j := range c.VolumeMounts {
			vm := &c.VolumeMounts[j]
			if vm.MountPath == dir || vm.MountPath == rules {
				mount = vm
			}
		}
		r.check(mount != nil, "%s container %s: nothing is mounted at %s for the rules file %s", where, c.Name, dir, rules)
		if mount == nil {
			continue
		}
		r.check(mount.SubPath == "" && mount.SubPathExpr == "" && mount.MountPath == dir,
			"%s container %s: the rules are mounted with subPath or as a single file: ConfigMap updates never reach it (mount the directory)", where, c.Name)
		var vol *corev1.Volume
		for j := range spec.Volumes {
			if spec.Volumes[j].Name == mount.Name {
				vol = &spec.Volumes[j]
			}
		}
		r.check(vol != nil && vol.ConfigMap != nil, "%s: the rules volume %s is not a ConfigMap", where, mount.Name)
		if vol == nil || vol.ConfigMap == nil {
			continue
		}
		key := file
		for _, it := range vol.ConfigMap.Items {
			if it.Path == file {
				key = it.Key
			}
		}
		cm := m.configMapNamed(vol.ConfigMap.Name)
		if cm == nil {
			// A user-managed ConfigMap (rules.existingConfigMap): nothing to read.
			fmt.Printf("note: rules ConfigMap %s is not rendered by the chart (existingConfigMap)\n", vol.ConfigMap.Name)
			continue
		}
		text, ok := cm.Data[key]
		r.check(ok && strings.TrimSpace(text) != "", "ConfigMap %s: no rules under key %s (the worker reads %s)", cm.Name, key, rules)
		if ok && vigil != "" {
			checkRulesText(r, cm.Name, key, text, vigil)
		}
	}
}

func checkRulesText(r *report, cm, key, text, vigil string) {
	dir, err := os.MkdirTemp("", "vigil-rules-")
	if err != nil {
		r.check(false, "could not create a temporary directory: %v", err)
		return
	}
	defer os.RemoveAll(dir)
	f := filepath.Join(dir, key)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		r.check(false, "could not write %s: %v", f, err)
		return
	}
	out, err := exec.Command(vigil, "rules", "check", f).CombinedOutput()
	r.check(err == nil, "ConfigMap %s key %s: `vigil rules check` refused the rules: %v: %s", cm, key, err, strings.TrimSpace(string(out)))
}

// checkScaling: an autoscaler never takes a consumer Deployment past its
// topic's partition count, and no Deployment has two autoscalers.
func checkScaling(r *report, m *manifests) {
	scaledBy := map[string][]string{}
	for _, h := range m.hpas {
		where := "HorizontalPodAutoscaler " + h.Name
		ref := h.Spec.ScaleTargetRef
		d := m.deploymentNamed(ref.Name)
		r.check(ref.Kind == "Deployment" && d != nil, "%s: target %s %s is not a rendered Deployment", where, ref.Kind, ref.Name)
		min := int32(1)
		if h.Spec.MinReplicas != nil {
			min = *h.Spec.MinReplicas
		}
		r.check(min <= h.Spec.MaxReplicas, "%s: minReplicas %d > maxReplicas %d", where, min, h.Spec.MaxReplicas)
		r.check(len(h.Spec.Metrics) > 0, "%s: no metrics", where)
		if d == nil {
			continue
		}
		scaledBy[d.Name] = append(scaledBy[d.Name], where)
		if isConsole(d) {
			continue
		}
		if p, ok := partitions(r, d); ok {
			r.check(h.Spec.MaxReplicas <= p, "%s: maxReplicas %d exceeds the %d partitions of %s", where, h.Spec.MaxReplicas, p, d.Annotations[topicAnnotation])
		}
	}
	for _, so := range m.scaledObjects {
		where := "ScaledObject " + so.Metadata.Name
		ref := so.Spec.ScaleTargetRef
		d := m.deploymentNamed(ref.Name)
		r.check((ref.Kind == "" || ref.Kind == "Deployment") && d != nil, "%s: target %s is not a rendered Deployment", where, ref.Name)
		// KEDA's default maxReplicaCount is 100: it must be explicit.
		r.check(so.Spec.MaxReplicaCount != nil, "%s: maxReplicaCount unset (KEDA defaults to 100)", where)
		r.check(len(so.Spec.Triggers) > 0, "%s: no triggers", where)
		if d == nil || so.Spec.MaxReplicaCount == nil {
			continue
		}
		scaledBy[d.Name] = append(scaledBy[d.Name], where)
		if so.Spec.MinReplicaCount != nil {
			r.check(*so.Spec.MinReplicaCount <= *so.Spec.MaxReplicaCount, "%s: minReplicaCount > maxReplicaCount", where)
		}
		if p, ok := partitions(r, d); ok {
			r.check(*so.Spec.MaxReplicaCount <= p, "%s: maxReplicaCount %d exceeds the %d partitions of %s", where, *so.Spec.MaxReplicaCount, p, d.Annotations[topicAnnotation])
		}
		for _, t := range so.Spec.Triggers {
			if t.Type == "kafka" {
				r.check(t.Metadata["topic"] == d.Annotations[topicAnnotation],
					"%s: kafka trigger watches topic %q, the Deployment consumes %q", where, t.Metadata["topic"], d.Annotations[topicAnnotation])
				r.check(t.Metadata["consumerGroup"] != "" && t.Metadata["bootstrapServers"] != "" && t.Metadata["lagThreshold"] != "",
					"%s: kafka trigger needs bootstrapServers, consumerGroup and lagThreshold", where)
			}
		}
	}
	for name, by := range scaledBy {
		r.check(len(by) == 1, "Deployment %s has %d autoscalers (%s): they would fight", name, len(by), strings.Join(by, ", "))
		if d := m.deploymentNamed(name); d != nil {
			r.check(d.Spec.Replicas == nil, "Deployment %s sets replicas although autoscaled: every upgrade would reset it", name)
		}
	}
}

// checkMigrationJob: `vigil migrate` runs as a Helm hook before install and
// upgrade, with the same pod security as the fleet.
func checkMigrationJob(r *report, m *manifests) {
	var found bool
	for _, j := range m.jobs {
		where := "Job " + j.Name
		spec := &j.Spec.Template.Spec
		isMigrate := false
		for _, c := range spec.Containers {
			args := append(append([]string{}, c.Command...), c.Args...)
			for _, a := range args {
				isMigrate = isMigrate || a == "migrate"
			}
		}
		checkPodSecurity(r, where, spec)
		r.check(spec.RestartPolicy == corev1.RestartPolicyNever || spec.RestartPolicy == corev1.RestartPolicyOnFailure,
			"%s: restartPolicy %q", where, spec.RestartPolicy)
		if !isMigrate {
			continue
		}
		found = true
		hooks := map[string]bool{}
		for _, h := range strings.Split(j.Annotations["helm.sh/hook"], ",") {
			hooks[strings.TrimSpace(h)] = true
		}
		r.check(hooks["pre-install"] && hooks["pre-upgrade"],
			"%s: helm.sh/hook is %q, want pre-install and pre-upgrade", where, j.Annotations["helm.sh/hook"])
		r.check(j.Annotations["helm.sh/hook-delete-policy"] != "",
			"%s: no helm.sh/hook-delete-policy: the next upgrade fails on the old Job", where)
		r.check(j.Spec.BackoffLimit != nil && j.Spec.ActiveDeadlineSeconds != nil,
			"%s: backoffLimit and activeDeadlineSeconds must bound the hook", where)
	}
	r.check(found, "no Job runs `vigil migrate`")
}

var (
	// Settings whose values are credentials (vigil's secret settings and
	// librdkafka's password properties), by YAML key or environment name.
	secretKeyRE = regexp.MustCompile(`(?im)^\s*["']?(pg_conninfo|smtp_password|sms_password|sasl\.password|ssl\.key\.password|ssl\.keystore\.password|[a-z0-9_.]*(password|secret|token)[a-z0-9_.]*)["']?\s*:`)
	secretEnvRE = regexp.MustCompile(`(?i)(PASSWORD|CONNINFO|SECRET|TOKEN)`)
	// Values that look like credentials wherever they appear.
	secretValueREs = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\bpassword\s*=\s*\S`),                   // libpq conninfo
		regexp.MustCompile(`(?i)postgres(ql)?://[^:/@\s]+:[^@\s]+@`),    // URI with a password
		regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`),        // PEM key
		regexp.MustCompile(`(?i)\b(VIGIL_[A-Z_]*(PASSWORD|CONNINFO))=`), // env-file style
	}
)

// checkNoInlinedSecrets: credentials live only in Secrets the chart does
// not render (existingSecret); ConfigMaps and literal env values hold none.
func checkNoInlinedSecrets(r *report, m *manifests) {
	r.check(len(m.secrets) == 0, "the chart renders %d Secret(s): credentials must come from secrets.existingSecret", len(m.secrets))
	var secretValues []string
	for _, s := range m.secrets {
		for _, v := range s.Data {
			if len(v) >= 4 {
				secretValues = append(secretValues, string(v))
			}
		}
		for _, v := range s.StringData {
			if len(v) >= 4 {
				secretValues = append(secretValues, v)
			}
		}
	}
	for _, cm := range m.configMaps {
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := cm.Data[k]
			where := fmt.Sprintf("ConfigMap %s key %s", cm.Name, k)
			r.check(!secretEnvRE.MatchString(k), "%s: the key names a credential", where)
			body := stripComments(v)
			if loc := secretKeyRE.FindString(body); loc != "" {
				r.check(false, "%s: sets a credential (%s)", where, strings.TrimSpace(loc))
			} else {
				r.passed++
			}
			for _, re := range secretValueREs {
				r.check(!re.MatchString(v), "%s: holds something that looks like a credential (%s)", where, re)
			}
			for _, sv := range secretValues {
				r.check(!strings.Contains(v, sv), "%s: contains the value of a rendered Secret", where)
			}
		}
		r.check(len(cm.BinaryData) == 0, "ConfigMap %s: binaryData is not checked for credentials", cm.Name)
	}
	pods := map[string]*corev1.PodSpec{}
	for _, d := range m.deployments {
		pods["Deployment "+d.Name] = &d.Spec.Template.Spec
	}
	for _, j := range m.jobs {
		pods["Job "+j.Name] = &j.Spec.Template.Spec
	}
	for where, spec := range pods {
		secretMounts := map[string]bool{}
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				secretMounts[v.Name] = true
			}
		}
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			var secretDirs []string
			for _, vm := range c.VolumeMounts {
				if secretMounts[vm.Name] {
					secretDirs = append(secretDirs, vm.MountPath+"/")
				}
			}
			for _, e := range c.Env {
				ew := fmt.Sprintf("%s container %s env %s", where, c.Name, e.Name)
				for _, re := range secretValueREs {
					r.check(!re.MatchString(e.Value), "%s: literal value looks like a credential", ew)
				}
				if !secretEnvRE.MatchString(e.Name) {
					continue
				}
				if strings.HasSuffix(e.Name, "_FILE") {
					inSecret := false
					for _, dir := range secretDirs {
						inSecret = inSecret || strings.HasPrefix(e.Value, dir)
					}
					r.check(e.ValueFrom == nil && inSecret, "%s: must name a file of a mounted Secret, not %q", ew, e.Value)
					continue
				}
				r.check(e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil,
					"%s: a credential must come from a secretKeyRef, not a literal value", ew)
			}
		}
	}
}

// checkSecretsAsFiles (secrets.mode files): every credential reaches vigil
// as a file of a mounted Secret (VAR_FILE), none through the environment,
// where /proc/PID/environ, crash reports and every child process see it. So
// no container of any pod (the migration Job included) may take a variable
// from a secretKeyRef or import a Secret with envFrom: a credential that
// slips back into the environment (one vigil cannot read from a file, say)
// fails here instead of passing as an "allowed" secretKeyRef.
func checkSecretsAsFiles(r *report, m *manifests) {
	pods := podSpecs(m)
	r.check(len(pods) > 0, "secrets as files: no pods to check")
	for _, p := range pods {
		for _, c := range append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...) {
			for _, e := range c.Env {
				var ref *corev1.SecretKeySelector
				if e.ValueFrom != nil {
					ref = e.ValueFrom.SecretKeyRef
				}
				if ref != nil {
					r.check(false, "%s container %s env %s: takes its value from secretKeyRef %s/%s although secrets are files: mount the key and pass %s_FILE",
						p.where, c.Name, e.Name, ref.Name, ref.Key, e.Name)
				} else {
					r.passed++
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					r.check(false, "%s container %s: envFrom Secret %s puts its keys in the environment although secrets are files", p.where, c.Name, ef.SecretRef.Name)
				} else {
					r.passed++
				}
			}
		}
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// podsMatching returns the Deployments whose pods a selector matches.
func (m *manifests) podsMatching(sel labels.Selector) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range m.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

// checkServices: each Service selects vigil pods and targets a port they
// have; each ServiceMonitor selects a Service by a port name it has.
func checkServices(r *report, m *manifests) {
	for _, s := range m.services {
		where := "Service " + s.Name
		ds := m.podsMatching(labels.SelectorFromSet(s.Spec.Selector))
		r.check(len(s.Spec.Selector) > 0 && len(ds) > 0, "%s: selects no rendered pods", where)
		for _, p := range s.Spec.Ports {
			for _, d := range ds {
				ok := false
				for i := range d.Spec.Template.Spec.Containers {
					_, found := resolvePort(&d.Spec.Template.Spec.Containers[i], p.TargetPort.String())
					ok = ok || found
				}
				r.check(ok, "%s port %s: targetPort %s is not a port of %s", where, p.Name, p.TargetPort.String(), d.Name)
			}
		}
	}
	for _, sm := range m.serviceMonitors {
		where := "ServiceMonitor " + sm.Metadata.Name
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		r.check(err == nil && !sel.Empty(), "%s: selector is empty or invalid (%v)", where, err)
		if err != nil {
			continue
		}
		var matched []*corev1.Service
		for _, s := range m.services {
			if sel.Matches(labels.Set(s.Labels)) {
				matched = append(matched, s)
			}
		}
		r.check(len(matched) > 0, "%s: selects no rendered Service", where)
		r.check(len(sm.Spec.Endpoints) > 0, "%s: no endpoints", where)
		for _, ep := range sm.Spec.Endpoints {
			r.check(ep.Path == "" || ep.Path == "/metrics", "%s: path %q, vigil serves /metrics", where, ep.Path)
			for _, s := range matched {
				ok := false
				for _, p := range s.Spec.Ports {
					ok = ok || p.Name == ep.Port
				}
				r.check(ok, "%s: Service %s has no port named %q", where, s.Name, ep.Port)
			}
		}
	}
}

func checkPDBs(r *report, m *manifests) {
	for _, p := range m.pdbs {
		where := "PodDisruptionBudget " + p.Name
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		r.check(err == nil && !sel.Empty() && len(m.podsMatching(sel)) > 0, "%s: selects no rendered pods", where)
		r.check((p.Spec.MaxUnavailable != nil) != (p.Spec.MinAvailable != nil), "%s: set exactly one of maxUnavailable and minAvailable", where)
	}
}

func checkNetworkPolicies(r *report, m *manifests) {
	for _, np := range m.netpols {
		where := "NetworkPolicy " + np.Name
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		ds := []*appsv1.Deployment{}
		if err == nil && !sel.Empty() {
			ds = m.podsMatching(sel)
		}
		r.check(len(ds) > 0, "%s: selects no rendered pods", where)
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				for _, d := range ds {
					_, ok := resolvePort(&d.Spec.Template.Spec.Containers[0], p.Port.String())
					r.check(ok, "%s: ingress port %s is not a port of %s", where, p.Port.String(), d.Name)
				}
			}
		}
		hasEgressType := false
		for _, t := range np.Spec.PolicyTypes {
			hasEgressType = hasEgressType || t == networkingv1.PolicyTypeEgress
		}
		if hasEgressType {
			dns := false
			for _, rule := range np.Spec.Egress {
				for _, p := range rule.Ports {
					dns = dns || (p.Port != nil && p.Port.IntValue() == 53)
				}
			}
			r.check(dns, "%s: restricts egress without allowing DNS: Kafka and PostgreSQL names would not resolve", where)
		}
	}
}

func isConsole(d *appsv1.Deployment) bool {
	return d.Labels[componentLabel] == "console"
}

// checkConsole: the console Deployment runs `vigil console`, is reached
// through a Service, and has a PodDisruptionBudget that selects its pods
// and no other Deployment's (one budget over two fleets lets a drain take
// all of one); a console HPA scales on a metric, within min <= max.
func checkConsole(r *report, m *manifests) {
	d := m.deployment("console")
	if d == nil {
		for _, in := range m.ingresses {
			r.check(false, "Ingress %s: rendered without a console Deployment", in.Name)
		}
		return
	}
	where := "Deployment " + d.Name
	runs := false
	for _, c := range d.Spec.Template.Spec.Containers {
		args := append(append([]string{}, c.Command...), c.Args...)
		runs = runs || (len(args) > 0 && args[0] == "console")
	}
	r.check(runs, "%s: no container runs `vigil console`", where)
	served := false
	for _, s := range m.services {
		for _, sd := range m.podsMatching(labels.SelectorFromSet(s.Spec.Selector)) {
			served = served || (len(s.Spec.Selector) > 0 && sd.Name == d.Name)
		}
	}
	r.check(served, "%s: no Service selects the console's pods", where)
	budgeted := false
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		ds := m.podsMatching(sel)
		for _, pd := range ds {
			if pd.Name == d.Name {
				budgeted = true
				r.check(len(ds) == 1, "PodDisruptionBudget %s: selects the console and %d other Deployment(s): one budget over several fleets", p.Name, len(ds)-1)
			}
		}
	}
	r.check(budgeted, "%s: no PodDisruptionBudget selects the console's pods", where)
	for _, h := range m.hpas {
		if h.Spec.ScaleTargetRef.Name != d.Name {
			continue
		}
		hw := "HorizontalPodAutoscaler " + h.Name
		r.check(h.Spec.MinReplicas != nil && *h.Spec.MinReplicas >= 2,
			"%s: minReplicas must be at least 2: one console replica is an outage at every drain", hw)
	}
}

// consoleContainer: the container that runs `vigil console`, or nil.
func consoleContainer(d *appsv1.Deployment) *corev1.Container {
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		args := append(append([]string{}, c.Command...), c.Args...)
		if len(args) > 0 && args[0] == "console" {
			return c
		}
	}
	return nil
}

// consolePorts: the container port numbers of the console's pages (the
// --listen port, named http) and of its /metrics (VIGIL_CONSOLE_METRICS_ADDR's
// port; the pages' port when unset: the console then serves both there).
func consolePorts(c *corev1.Container) (pages, metrics int32) {
	pages, _ = resolvePort(c, "http")
	metrics = pages
	if addr, ok := envValue(c, "VIGIL_CONSOLE_METRICS_ADDR"); ok {
		if i := strings.LastIndex(addr, ":"); i >= 0 {
			if n, err := strconv.Atoi(addr[i+1:]); err == nil {
				metrics = int32(n)
			}
		}
	}
	return pages, metrics
}

// everyone: a NetworkPolicy peer that admits any source (every address,
// or every pod of every namespace).
func everyone(p networkingv1.NetworkPolicyPeer) bool {
	if p.IPBlock != nil {
		return p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0"
	}
	emptySel := func(s *metav1.LabelSelector) bool {
		return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
	}
	return p.NamespaceSelector != nil && emptySel(p.NamespaceSelector) && emptySel(p.PodSelector)
}

// checkConsoleNetworkPolicy: a NetworkPolicy over the console's pods
// (optional) keeps its promises. /metrics must be on a port of its own:
// NetworkPolicy sees ports, not paths, so with one port the peers admitted
// to the pages (the ingress controller) could read /metrics too. Each
// ingress rule names its ports and its peers, never everyone, and never
// admits the same peers to the pages and to /metrics; both Ingress and
// Egress are restricted, and each egress rule names its ports and, but for
// DNS, its destinations. The console's Service sends its http port to the
// pages and its metrics port to /metrics.
func checkConsoleNetworkPolicy(r *report, m *manifests) {
	d := m.deployment("console")
	if d == nil {
		return
	}
	c := consoleContainer(d)
	if c == nil {
		return
	}
	pages, metrics := consolePorts(c)
	for _, s := range m.services {
		selects := false
		for _, sd := range m.podsMatching(labels.SelectorFromSet(s.Spec.Selector)) {
			selects = selects || (len(s.Spec.Selector) > 0 && sd.Name == d.Name)
		}
		if !selects {
			continue
		}
		for _, sp := range s.Spec.Ports {
			n, _ := resolvePort(c, sp.TargetPort.String())
			if sp.Name == "http" {
				r.check(n == pages, "Service %s port http: targetPort %s is not the console's pages port %d", s.Name, sp.TargetPort.String(), pages)
			}
			if sp.Name == "metrics" {
				r.check(n == metrics, "Service %s port metrics: targetPort %s is not the port the console serves /metrics on (%d)", s.Name, sp.TargetPort.String(), metrics)
			}
		}
	}
	for _, np := range m.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || sel.Empty() {
			continue
		}
		covers := false
		for _, pd := range m.podsMatching(sel) {
			covers = covers || pd.Name == d.Name
		}
		if !covers {
			continue
		}
		where := "NetworkPolicy " + np.Name + " (console)"
		own := false
		for _, cp := range c.Ports {
			own = own || (cp.ContainerPort == metrics && metrics != pages)
		}
		r.check(metrics != pages && own, "%s: /metrics shares the pages' port %d (set VIGIL_CONSOLE_METRICS_ADDR to a container port of its own): the peers admitted to the pages could read /metrics", where, pages)
		types := map[networkingv1.PolicyType]bool{}
		for _, t := range np.Spec.PolicyTypes {
			types[t] = true
		}
		r.check(types[networkingv1.PolicyTypeIngress] && types[networkingv1.PolicyTypeEgress], "%s: policyTypes must restrict both Ingress and Egress", where)
		for i, rule := range np.Spec.Ingress {
			rw := fmt.Sprintf("%s ingress rule %d", where, i+1)
			r.check(len(rule.Ports) > 0, "%s: admits every port", rw)
			r.check(len(rule.From) > 0, "%s: admits every source", rw)
			for _, p := range rule.From {
				r.check(!everyone(p), "%s: a peer admits every source", rw)
			}
			hasPages, hasMetrics := false, false
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				n, _ := resolvePort(c, p.Port.String())
				hasPages = hasPages || n == pages
				hasMetrics = hasMetrics || n == metrics
			}
			r.check(!(hasPages && hasMetrics), "%s: admits the same peers to the pages and to /metrics", rw)
		}
		for i, rule := range np.Spec.Egress {
			rw := fmt.Sprintf("%s egress rule %d", where, i+1)
			r.check(len(rule.Ports) > 0, "%s: allows every port", rw)
			dns := len(rule.Ports) > 0
			for _, p := range rule.Ports {
				dns = dns && p.Port != nil && p.Port.IntValue() == 53
			}
			r.check(dns || len(rule.To) > 0, "%s: allows its ports to any destination (only DNS may)", rw)
			for _, p := range rule.To {
				r.check(!everyone(p), "%s: a destination is everyone", rw)
			}
		}
	}
}

// The paths the console serves to the outside world (pages, API,
// acknowledgement pages, SMS gateway webhook): an Ingress routes these and
// nothing else. /metrics, /healthz and /readyz are internal.
var consolePublicPaths = []string{"/console/", "/api/v1/", "/ack/", "/sms/inbound"}
var consoleInternalPaths = []string{"/metrics", "/healthz", "/readyz"}

// checkIngresses: every Ingress serves TLS for each host it routes, routes
// only the console's public paths (a Prefix path that is a prefix of
// /metrics, "/" included, would publish the metrics), by Prefix or Exact,
// to a rendered Service port that reaches the console's http port.
func checkIngresses(r *report, m *manifests) {
	for _, in := range m.ingresses {
		where := "Ingress " + in.Name
		r.check(in.Spec.DefaultBackend == nil, "%s: a defaultBackend routes every path, /metrics included", where)
		tlsHosts := map[string]bool{}
		for _, t := range in.Spec.TLS {
			r.check(t.SecretName != "", "%s: a tls entry without secretName", where)
			for _, h := range t.Hosts {
				tlsHosts[h] = true
			}
		}
		r.check(len(in.Spec.TLS) > 0, "%s: no tls: passwords and session cookies would cross the network in clear", where)
		r.check(len(in.Spec.Rules) > 0, "%s: no rules", where)
		for _, rule := range in.Spec.Rules {
			r.check(rule.Host != "", "%s: a rule without host (matches every name, and no certificate covers it)", where)
			r.check(rule.Host == "" || tlsHosts[rule.Host], "%s: host %q has no tls entry", where, rule.Host)
			if rule.HTTP == nil {
				r.check(false, "%s: rule for %q has no http paths", where, rule.Host)
				continue
			}
			for _, p := range rule.HTTP.Paths {
				pw := fmt.Sprintf("%s path %q", where, p.Path)
				pt := networkingv1.PathTypeImplementationSpecific
				if p.PathType != nil {
					pt = *p.PathType
				}
				r.check(pt == networkingv1.PathTypePrefix || pt == networkingv1.PathTypeExact,
					"%s: pathType %s: only Prefix or Exact say which paths are exposed", pw, pt)
				for _, internal := range consoleInternalPaths {
					exposes := p.Path == internal || (pt != networkingv1.PathTypeExact && prefixMatches(p.Path, internal))
					r.check(!exposes, "%s: exposes %s through the Ingress", pw, internal)
				}
				public := false
				for _, pub := range consolePublicPaths {
					public = public || p.Path == pub || (strings.HasSuffix(pub, "/") && strings.HasPrefix(p.Path, pub))
				}
				r.check(public, "%s: not one of the console's public paths %v", pw, consolePublicPaths)
				checkIngressBackend(r, m, pw, p.Backend)
			}
		}
	}
}

// prefixMatches: a Kubernetes Prefix path matches target (element-wise:
// "/" and "/metrics" match /metrics, "/met" does not).
func prefixMatches(prefix, target string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return prefix == "" || target == prefix || strings.HasPrefix(target, prefix+"/")
}

func checkIngressBackend(r *report, m *manifests, pw string, b networkingv1.IngressBackend) {
	r.check(b.Service != nil, "%s: backend is not a Service", pw)
	if b.Service == nil {
		return
	}
	var svc *corev1.Service
	for _, s := range m.services {
		if s.Name == b.Service.Name {
			svc = s
		}
	}
	r.check(svc != nil, "%s: backend Service %s is not rendered", pw, b.Service.Name)
	if svc == nil {
		return
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if (b.Service.Port.Name != "" && sp.Name == b.Service.Port.Name) || (b.Service.Port.Number != 0 && sp.Port == b.Service.Port.Number) {
			port = sp
		}
	}
	r.check(port != nil, "%s: Service %s has no port %s%d", pw, svc.Name, b.Service.Port.Name, b.Service.Port.Number)
	ds := m.podsMatching(labels.SelectorFromSet(svc.Spec.Selector))
	console := len(ds) > 0
	for _, d := range ds {
		console = console && isConsole(d)
	}
	r.check(console, "%s: Service %s does not select (only) the console's pods", pw, svc.Name)
}
