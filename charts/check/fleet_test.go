package check

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// workloads indexes a rendering's workloads and ScaledObjects by kind/name.
func workloads(t *testing.T, args ...string) map[string]runtime.Object {
	t.Helper()
	objs, err := decodeAll(newDecoder(t), render(t, args...))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]runtime.Object{}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out["Deployment/"+o.Name] = o
		case *appsv1.StatefulSet:
			out["StatefulSet/"+o.Name] = o
		case *kedav1alpha1.ScaledObject:
			out["ScaledObject/"+o.Name] = o
		case *corev1.Service:
			out["Service/"+o.Name] = o
		}
	}
	return out
}

// flagValue returns the value of --name=value in args, or "" and false.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "", true
		}
	}
	return "", false
}

func envOf(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// TestFleet checks the fleet example: partitioned scorers told their
// partition by the downward API, trainers and schedulers on the same
// streams and buckets as the scorers, and KEDA scaling the trainers on the
// job stream's trainer consumer.
func TestFleet(t *testing.T) {
	w := workloads(t, "-f", filepath.Join(chartDir, "examples", "fleet.yaml"))
	sts, ok := w["StatefulSet/dagmm-scorer"].(*appsv1.StatefulSet)
	if !ok {
		t.Fatalf("no StatefulSet dagmm-scorer in %v", keys(w))
	}
	if _, ok := w["Deployment/dagmm-scorer"]; ok {
		t.Error("a scorer Deployment beside the StatefulSet")
	}
	if _, ok := w["Service/"+sts.Spec.ServiceName]; !ok {
		t.Errorf("no Service %s for the StatefulSet", sts.Spec.ServiceName)
	}
	scorer := sts.Spec.Template.Spec.Containers[0]
	if *sts.Spec.Replicas != 4 || envOf(scorer, "DAGMM_PARTITIONS") == nil || envOf(scorer, "DAGMM_PARTITIONS").Value != "4" {
		t.Errorf("replicas %d, DAGMM_PARTITIONS %+v: want 4 and 4", *sts.Spec.Replicas, envOf(scorer, "DAGMM_PARTITIONS"))
	}
	if p := envOf(scorer, "DAGMM_PARTITION"); p == nil || p.ValueFrom == nil || p.ValueFrom.FieldRef == nil ||
		p.ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
		t.Errorf("DAGMM_PARTITION %+v: want the pod-index label", p)
	}
	for _, f := range []string{"fleet", "jetstream"} {
		if _, ok := flagValue(scorer.Args, f); !ok {
			t.Errorf("scorer args %q: no --%s", scorer.Args, f)
		}
	}
	if _, ok := flagValue(scorer.Args, "model"); ok {
		t.Errorf("scorer args %q: --model with model.source none", scorer.Args)
	}

	trainer, ok := w["Deployment/dagmm-trainer"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment dagmm-trainer in %v", keys(w))
	}
	sched, ok := w["Deployment/dagmm-scheduler"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment dagmm-scheduler in %v", keys(w))
	}
	if trainer.Spec.Replicas != nil {
		t.Errorf("trainer replicas %d with KEDA: want none (KEDA owns it)", *trainer.Spec.Replicas)
	}
	if *sched.Spec.Replicas != 2 {
		t.Errorf("scheduler replicas %d, want 2", *sched.Spec.Replicas)
	}
	tArgs, sArgs := trainer.Spec.Template.Spec.Containers[0].Args, sched.Spec.Template.Spec.Containers[0].Args
	if tArgs[0] != "trainer" || sArgs[0] != "trainer" {
		t.Errorf("trainer args %q, scheduler args %q: want dagmm trainer", tArgs, sArgs)
	}
	if _, ok := flagValue(sArgs, "schedule"); !ok {
		t.Errorf("scheduler args %q: no --schedule", sArgs)
	}
	if _, ok := flagValue(tArgs, "schedule"); ok {
		t.Errorf("trainer args %q: --schedule", tArgs)
	}
	// The scorers and the trainers must name the same streams and buckets.
	same := []struct{ scorer, trainer string }{
		{"history-stream", "stream"}, {"history-max", "history"}, {"history-max-bytes", "history-max-bytes"},
		{"registry-objects", "registry-objects"}, {"registry-index", "registry-index"},
		{"registry-max-bytes", "registry-max-bytes"}, {"jobs-stream", "jobs-stream"}, {"stream-replicas", "stream-replicas"},
	}
	for _, p := range same {
		sv, ok1 := flagValue(scorer.Args, p.scorer)
		for _, args := range [][]string{tArgs, sArgs} {
			tv, ok2 := flagValue(args, p.trainer)
			if !ok1 || !ok2 || sv != tv {
				t.Errorf("scorer --%s=%q (%v), trainer --%s=%q (%v): want the same", p.scorer, sv, ok1, p.trainer, tv, ok2)
			}
		}
	}
	if v, _ := flagValue(tArgs, "history"); v != "2000" {
		t.Errorf("trainer --history=%s, want the example's 2000", v)
	}

	so, ok := w["ScaledObject/dagmm-trainer"].(*kedav1alpha1.ScaledObject)
	if !ok {
		t.Fatalf("no ScaledObject dagmm-trainer in %v", keys(w))
	}
	if so.Spec.ScaleTargetRef.Name != trainer.Name || so.Spec.ScaleTargetRef.Kind != "Deployment" {
		t.Errorf("ScaledObject targets %+v, want Deployment %s", so.Spec.ScaleTargetRef, trainer.Name)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("triggers %+v, want one nats-jetstream", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	jobs, _ := flagValue(tArgs, "jobs-stream")
	consumer, _ := flagValue(tArgs, "consumer")
	want := map[string]string{
		"natsServerMonitoringEndpoint": "nats.nats.svc:8222", "account": "$G",
		"stream": jobs, "consumer": consumer, "lagThreshold": "10", "useHttps": "false",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("trigger metadata %s = %q, want %q", k, md[k], v)
		}
	}
	if *so.Spec.MaxReplicaCount != 8 || *so.Spec.MinReplicaCount != 0 {
		t.Errorf("replica counts %d..%d, want 0..8", *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)
	}

	// One partition and no KEDA: a scorer Deployment and plain trainer replicas.
	w = workloads(t, "--set", "mode=fleet", "--set", "model.source=none", "--set", "trainer.replicas=3")
	if _, ok := w["Deployment/dagmm-scorer"]; !ok {
		t.Errorf("no scorer Deployment with one partition: %v", keys(w))
	}
	if tr, ok := w["Deployment/dagmm-trainer"].(*appsv1.Deployment); !ok || *tr.Spec.Replicas != 3 {
		t.Errorf("trainer Deployment %v: want 3 replicas", ok)
	}
	for _, k := range []string{"StatefulSet/dagmm-scorer", "ScaledObject/dagmm-trainer"} {
		if _, ok := w[k]; ok {
			t.Errorf("%s without partitions or KEDA", k)
		}
	}
	// Single mode: no trainers.
	w = workloads(t)
	for _, k := range []string{"Deployment/dagmm-trainer", "Deployment/dagmm-scheduler"} {
		if _, ok := w[k]; ok {
			t.Errorf("%s in single mode", k)
		}
	}
}

// TestNATSAuth checks each way of authenticating reaches every pod that
// connects: the variables, and the Secrets' files mounted read-only where
// the variables point.
func TestNATSAuth(t *testing.T) {
	tests := []struct {
		file  string
		env   map[string]string // variable: value, or "secret:NAME/KEY"
		files map[string]string // mounted file: "SECRET/KEY"
	}{
		{"testdata/nats-token.yaml",
			map[string]string{"DAGMM_NATS_TOKEN": "secret:nats-token/token", "DAGMM_NATS_TLS_CA": "/etc/dagmm/nats/ca.crt"},
			map[string]string{"ca.crt": "nats-ca/ca.crt"}},
		{"testdata/nats-user.yaml",
			map[string]string{"DAGMM_NATS_USER": "dagmm", "DAGMM_NATS_PASSWORD": "secret:nats-password/password"},
			nil},
		{"testdata/nats-nkey.yaml",
			map[string]string{"DAGMM_NATS_NKEY": "/etc/dagmm/nats/user.nk", "DAGMM_NATS_TLS_CERT": "/etc/dagmm/nats/tls.crt", "DAGMM_NATS_TLS_KEY": "/etc/dagmm/nats/tls.key"},
			map[string]string{"user.nk": "nats-nkey/seed.nk", "tls.crt": "nats-client/tls.crt", "tls.key": "nats-client/tls.key"}},
		{filepath.Join(chartDir, "examples", "existing-nats-credentials.yaml"),
			map[string]string{"DAGMM_NATS_CREDS": "/etc/dagmm/nats/user.creds", "DAGMM_NATS_URL": "tls://nats.example.com:4222"},
			map[string]string{"user.creds": "dagmm-nats-creds/user.creds", "ca.crt": "dagmm-nats-ca/ca.crt", "tls.crt": "dagmm-nats-client/tls.crt"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			pods := 0
			for name, obj := range workloads(t, "-f", tt.file) {
				_, spec := podSpecOf(obj)
				if spec == nil {
					continue
				}
				pods++
				c := spec.Containers[0]
				for k, want := range tt.env {
					if got := envString(envOf(c, k)); got != want {
						t.Errorf("%s: %s = %q, want %q", name, k, got, want)
					}
				}
				got := mountedFiles(c, spec.Volumes)
				for f, want := range tt.files {
					if got[f] != want {
						t.Errorf("%s: /etc/dagmm/nats/%s from %q, want %q (mounted: %v)", name, f, got[f], want, got)
					}
				}
				if len(tt.files) == 0 && len(got) != 0 {
					t.Errorf("%s: files %v mounted, want none", name, got)
				}
			}
			if pods == 0 {
				t.Fatal("no pods")
			}
		})
	}
}

func envString(e *corev1.EnvVar) string {
	switch {
	case e == nil:
		return ""
	case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
		return "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	return e.Value
}

// mountedFiles returns the files of the projected volume mounted read-only
// at /etc/dagmm/nats, each as "SECRET/KEY".
func mountedFiles(c corev1.Container, vols []corev1.Volume) map[string]string {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/etc/dagmm/nats" || !m.ReadOnly {
			continue
		}
		for _, v := range vols {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if src.Secret == nil {
					continue
				}
				for _, it := range src.Secret.Items {
					out[it.Path] = src.Secret.Name + "/" + it.Key
				}
			}
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestRegistrySource checks single mode with the model from the registry:
// the scorers name the key and the fleet's buckets, and mount no model.
func TestRegistrySource(t *testing.T) {
	w := workloads(t, "-f", "testdata/nats-token.yaml")
	d, ok := w["Deployment/dagmm-scorer"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no scorer Deployment in %v", keys(w))
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	for flag, want := range map[string]string{"model-from-registry": "prod", "registry-objects": "dagmm-models", "registry-index": "dagmm-registry"} {
		if v, ok := flagValue(args, flag); !ok || v != want {
			t.Errorf("scorer --%s=%q (%v), want %q", flag, v, ok, want)
		}
	}
	if _, ok := flagValue(args, "model"); ok {
		t.Errorf("scorer args %q: --model with model.source registry", args)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "model" {
			t.Errorf("a model volume with model.source registry: %+v", v)
		}
	}
}
