package check

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

const argocdDir = "../../deploy/argocd"

// argoCD is the Argo CD release whose published Application CRD
// (manifests/crds/application-crd.yaml in its module) the Applications are
// checked against. Its Go types cannot be imported: for v3.5 they need a
// gitops-engine version the module proxy does not serve, and v3.6 needs Go
// 1.27. The module is downloaded, not required: nothing of it is built.
const argoCD = "github.com/argoproj/argo-cd/v3@v3.5.1"

// argocdCRD returns the path of Argo CD's published Application CRD in the
// module cache, downloading the release's module (about 55 MB) once.
var argocdCRD = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", argoCD).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s%s", err, ee.Stderr, out)
		}
		return "", fmt.Errorf("go mod download %s: %w", argoCD, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no module directory in %s", argoCD, out)
	}
	return filepath.Join(m.Dir, "manifests", "crds", "application-crd.yaml"), nil
})

// argocdSchema is the Application's v1alpha1 schema.
func argocdSchema(t *testing.T) *crdSchema {
	t.Helper()
	path, err := argocdCRD()
	if err != nil {
		t.Fatal(err)
	}
	return loadCRD(t, path, "v1alpha1")
}

// application is the part of an Argo CD Application that deploy/argocd uses,
// for the checks of its values; [readApplication] checks the whole file
// against Argo CD's published schema first.
type application struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision"`
			Path           string `json:"path"`
			Chart          string `json:"chart"`
			Helm           struct {
				ValueFiles   []string       `json:"valueFiles"`
				ValuesObject map[string]any `json:"valuesObject"`
			} `json:"helm"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy struct {
			Automated struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated"`
			SyncOptions []string `json:"syncOptions"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

func readApplication(t *testing.T, path string) application {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := argocdSchema(t).check(raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var app application
	if err := yaml.UnmarshalStrict(raw, &app); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if app.APIVersion != "argoproj.io/v1alpha1" || app.Kind != "Application" {
		t.Fatalf("%s: %s %s, want an argoproj.io/v1alpha1 Application", path, app.APIVersion, app.Kind)
	}
	return app
}

// TestArgoCD checks that NATS syncs in an earlier wave than dagmm, that NATS
// comes from its chart repository with JetStream on, and that the chart
// renders with the dagmm Application's values.
func TestArgoCD(t *testing.T) {
	readApplication(t, filepath.Join(argocdDir, "root.yaml"))
	nats := readApplication(t, filepath.Join(argocdDir, "apps", "nats.yaml"))
	dagmm := readApplication(t, filepath.Join(argocdDir, "apps", "dagmm.yaml"))
	fleet := readApplication(t, filepath.Join(argocdDir, "fleet", "dagmm.yaml"))

	wave := func(app application) int {
		w, err := strconv.Atoi(app.Metadata.Annotations["argocd.argoproj.io/sync-wave"])
		if err != nil {
			t.Fatalf("%s: sync-wave: %v", app.Metadata.Name, err)
		}
		return w
	}
	for _, app := range []application{dagmm, fleet} {
		if wave(nats) >= wave(app) {
			t.Errorf("NATS in wave %d, dagmm in %d: NATS must come first", wave(nats), wave(app))
		}
	}
	if nats.Spec.Source.Chart != "nats" || nats.Spec.Source.RepoURL != "https://nats-io.github.io/k8s/helm/charts/" {
		t.Errorf("NATS from %s chart %q, want the official chart repository", nats.Spec.Source.RepoURL, nats.Spec.Source.Chart)
	}
	var nv struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					PVC struct {
						Size string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
			} `json:"jetstream"`
		} `json:"config"`
	}
	raw, _ := yaml.Marshal(nats.Spec.Source.Helm.ValuesObject)
	if err := yaml.UnmarshalStrict(raw, &nv); err != nil {
		t.Fatalf("NATS values: %v", err)
	}
	if !nv.Config.JetStream.Enabled || nv.Config.JetStream.FileStore.PVC.Size == "" || nv.Config.Cluster.Replicas < 2 {
		t.Errorf("NATS values %+v: want JetStream on a sized volume and a cluster of at least 2 (JetStream's minimum)", nv)
	}

	for _, app := range []application{dagmm, fleet} {
		renderApplication(t, app)
	}
}

// renderApplication renders the chart with a dagmm Application's values and
// decodes the result strictly.
func renderApplication(t *testing.T, dagmm application) {
	t.Helper()
	if dagmm.Spec.Source.Path != "charts/dagmm" {
		t.Fatalf("dagmm from path %q, want charts/dagmm", dagmm.Spec.Source.Path)
	}
	args := []string{}
	for _, f := range dagmm.Spec.Source.Helm.ValueFiles {
		args = append(args, "-f", filepath.Join(chartDir, f))
	}
	obj, _ := yaml.Marshal(dagmm.Spec.Source.Helm.ValuesObject)
	inline := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(inline, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, "-f", inline)
	if _, err := decodeAll(newDecoder(t), render(t, args...)); err != nil {
		t.Fatalf("the chart with the values of %v: %v", dagmm.Spec.Source.Helm.ValueFiles, err)
	}
}
