package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

const chartDir = "../dagmm"

// kubeVersion is the cluster version helm template renders for: helm built
// with go install or go tool says v1.20 by default, below the chart's kubeVersion.
const kubeVersion = "1.34.0"

// valuesCase is one way to install the chart: helm's extra arguments.
type valuesCase struct {
	name string
	args []string
}

// valuesCases are the default values, every example values file, the
// model ConfigMap made by the chart and the ways to authenticate to NATS.
func valuesCases(t *testing.T) []valuesCase {
	t.Helper()
	cases := []valuesCase{
		{"default", nil},
		{"chart-made-configmap", []string{"-f", "testdata/chart-made-configmap.yaml"}},
		{"nats-token", []string{"-f", "testdata/nats-token.yaml"}},
		{"nats-user", []string{"-f", "testdata/nats-user.yaml"}},
		{"nats-nkey", []string{"-f", "testdata/nats-nkey.yaml"}},
	}
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("%d example values files in %s/examples, want at least 2", len(files), chartDir)
	}
	for _, f := range files {
		cases = append(cases, valuesCase{filepath.Base(f), []string{"-f", f}})
	}
	return cases
}

// helm runs the helm pinned in this module's go.mod (go tool helm).
func helm(args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"tool", "helm"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func TestHelmLint(t *testing.T) {
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			if out, err := helm(append([]string{"lint", "--strict", chartDir}, vc.args...)...); err != nil {
				t.Fatal(err)
			} else if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint: %s", out)
			}
		})
	}
}

// newDecoder decodes the Kubernetes kinds, the Prometheus Operator's and
// KEDA's, strictly: an unknown or duplicate field is an error.
func newDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, monitoringv1.AddToScheme, kedav1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll splits a rendered stream into documents and decodes each.
func decodeAll(dec runtime.Decoder, rendered string) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if len(probe) == 0 { // only comments, e.g. a template that rendered nothing
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d (%v): %w\n%s", len(objs)+1, gvk, err, doc)
		}
		objs = append(objs, obj)
	}
}

// podSpecOf returns the pod template of a workload, or nil.
func podSpecOf(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec
	case *appsv1.Deployment:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.Job:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil, nil
}

// restrictedProblems evaluates a pod against the latest restricted Pod
// Security Standard; empty means allowed.
func restrictedProblems(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	t.Helper()
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	agg := policy.AggregateCheckResults(eval.EvaluatePod(lv, meta, spec))
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason()
}

func render(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(append([]string{"template", "dagmm", chartDir, "--namespace", "dagmm", "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderedManifests renders the chart with each values case, decodes every
// manifest strictly and evaluates every pod against the restricted standard.
func TestRenderedManifests(t *testing.T) {
	dec := newDecoder(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			objs, err := decodeAll(dec, render(t, vc.args...))
			if err != nil {
				t.Fatal(err)
			}
			pods := 0
			kinds := map[string]int{}
			for _, obj := range objs {
				kinds[fmt.Sprintf("%T", obj)]++
				meta, spec := podSpecOf(obj)
				if spec == nil {
					continue
				}
				pods++
				if p := restrictedProblems(t, meta, spec); p != "" {
					t.Errorf("%T %s: restricted Pod Security Standard: %s", obj, meta.Name, p)
				}
			}
			if kinds["*v1.Deployment"] == 0 || kinds["*v1.Service"] == 0 || pods == 0 {
				t.Errorf("rendered %v: want at least a scorer Deployment and a Service", kinds)
			}
			t.Logf("%d manifests, %d pod templates: %v", len(objs), pods, kinds)
		})
	}
}

// TestScorer checks the scorer's probes, security context and rolling update
// in the default rendering.
func TestScorer(t *testing.T) {
	objs, err := decodeAll(newDecoder(t), render(t))
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	for _, obj := range objs {
		if o, ok := obj.(*appsv1.Deployment); ok && o.Name == "dagmm-scorer" {
			d = o
		}
	}
	if d == nil {
		t.Fatal("no Deployment dagmm-scorer")
	}
	c := d.Spec.Template.Spec.Containers[0]
	tests := []struct {
		what      string
		got, want any
	}{
		{"liveness path", c.LivenessProbe.HTTPGet.Path, "/v2/health/live"},
		{"readiness path", c.ReadinessProbe.HTTPGet.Path, "/v2/health/ready"},
		{"read-only root", *c.SecurityContext.ReadOnlyRootFilesystem, true},
		{"maxUnavailable", d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(), 0},
		{"replicas", *d.Spec.Replicas, int32(2)},
		{"first arg", c.Args[0], "serve"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

// TestMonitoring checks the ServiceMonitor, the PrometheusRule holds the
// groups of files/alerts.yaml, and the dashboard ConfigMap.
func TestMonitoring(t *testing.T) {
	objs, err := decodeAll(newDecoder(t), render(t,
		"--set", "metrics.serviceMonitor.enabled=true",
		"--set", "metrics.prometheusRule.enabled=true",
		"--set", "metrics.grafanaDashboard.enabled=true"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Helm reads no file outside the chart, so the chart holds a copy of
	// the shipped rules; it must not drift from them.
	shipped, err := os.ReadFile(filepath.Join(chartDir, "..", "..", "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != string(shipped) {
		t.Error("charts/dagmm/files/alerts.yaml differs from deploy/prometheus/alerts.yaml: copy the shipped rules into the chart")
	}
	var alerts struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(raw, &alerts); err != nil {
		t.Fatalf("files/alerts.yaml: %v", err)
	}
	var found []string
	for _, obj := range objs {
		switch o := obj.(type) {
		case *monitoringv1.ServiceMonitor:
			found = append(found, "ServiceMonitor")
			if len(o.Spec.Endpoints) != 1 || o.Spec.Endpoints[0].Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoints %+v, want /metrics", o.Spec.Endpoints)
			}
		case *monitoringv1.PrometheusRule:
			found = append(found, "PrometheusRule")
			got, _ := json.Marshal(o.Spec.Groups)
			want, _ := json.Marshal(alerts.Groups)
			if len(alerts.Groups) == 0 || !bytes.Equal(got, want) {
				t.Errorf("PrometheusRule groups\n%s\nwant files/alerts.yaml's\n%s", got, want)
			}
		case *corev1.ConfigMap:
			if o.Labels["grafana_dashboard"] != "1" {
				continue
			}
			found = append(found, "dashboard")
			var dash struct {
				Title  string `json:"title"`
				Panels []any  `json:"panels"`
			}
			if err := json.Unmarshal([]byte(o.Data["dagmm.json"]), &dash); err != nil || len(dash.Panels) == 0 {
				t.Errorf("dashboard ConfigMap: %v, %d panels", err, len(dash.Panels))
			}
		}
	}
	slices.Sort(found)
	if strings.Join(found, ",") != "PrometheusRule,ServiceMonitor,dashboard" {
		t.Errorf("found %v, want a ServiceMonitor, a PrometheusRule and a dashboard ConfigMap", found)
	}
}

// TestChecksFail shows that each check can fail: the schema refuses bad
// values, strict decoding refuses an unknown field, and the Pod Security
// evaluation refuses a pod without the security context.
func TestChecksFail(t *testing.T) {
	bad := []struct {
		name string
		args []string
	}{
		{"unknown value", []string{"--set", "scorer.replicaz=3"}},
		{"negative replicas", []string{"--set", "scorer.replicas=-1"}},
		{"bad model source", []string{"--set", "model.source=s3"}},
		{"registry source without a key", []string{"--set", "model.source=registry"}},
		{"registry source in fleet mode", []string{"--set", "mode=fleet", "--set", "model.source=registry", "--set", "model.registry.key=prod"}},
		{"retrain without a volume", []string{"--set", "retrain.enabled=true", "--set", "retrain.dataClaim=data"}},
		{"bad NATS URL", []string{"--set", "nats.url=http://nats:4222"}},
		{"bad log level", []string{"--set", "scorer.logLevel=loud"}},
		{"bad mode", []string{"--set", "mode=fleets"}},
		{"partitions in single mode", []string{"--set", "scorer.partitions=3"}},
		{"partitions with autoscaling", []string{"--set", "mode=fleet", "--set", "scorer.partitions=3", "--set", "scorer.autoscaling.enabled=true"}},
		{"no model file in single mode", []string{"--set", "model.source=none"}},
		{"two ways to authenticate", []string{"--set", "nats.auth.token.secretName=t", "--set", "nats.auth.creds.secretName=c"}},
		{"user without password", []string{"--set", "nats.auth.user=dagmm"}},
		{"keda without endpoint", []string{"--set", "mode=fleet", "--set", "trainer.keda.enabled=true", "--set", "trainer.keda.natsServerMonitoringEndpoint="}},
		{"bad stream name", []string{"--set", "mode=fleet", "--set", "fleet.jobs.stream=dagmm.jobs"}},
		{"too many stream replicas", []string{"--set", "mode=fleet", "--set", "fleet.streamReplicas=7"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := helm(append([]string{"template", "dagmm", chartDir, "--kube-version", kubeVersion}, tt.args...)...); err == nil {
				t.Errorf("helm template %v rendered; want an error", tt.args)
			}
		})
	}

	dec := newDecoder(t)
	rendered := render(t)
	withTypo := strings.Replace(rendered, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true", 1)
	if withTypo == rendered {
		t.Fatal("no readOnlyRootFilesystem in the rendering to misspell")
	}
	if _, err := decodeAll(dec, withTypo); err == nil || !strings.Contains(err.Error(), "readOnlyRootFileSystem") {
		t.Errorf("a misspelt field decoded: %v", err)
	}

	fleetRendered := render(t, "-f", filepath.Join(chartDir, "examples", "fleet.yaml"))
	withTypo = strings.Replace(fleetRendered, "pollingInterval:", "pollingIntervall:", 1)
	if withTypo == fleetRendered {
		t.Fatal("no ScaledObject pollingInterval in the fleet rendering to misspell")
	}
	if _, err := decodeAll(dec, withTypo); err == nil || !strings.Contains(err.Error(), "pollingIntervall") {
		t.Errorf("a misspelt ScaledObject field decoded: %v", err)
	}

	objs, err := decodeAll(dec, rendered+"\n---\n"+fleetRendered)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		meta, spec := podSpecOf(obj)
		if spec == nil {
			continue
		}
		spec.SecurityContext = nil
		spec.Containers[0].SecurityContext = nil
		if p := restrictedProblems(t, meta, spec); p == "" {
			t.Errorf("%T %s without security contexts passed the restricted standard", obj, meta.Name)
		}
	}
}
