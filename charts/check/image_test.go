package check

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// repoRoot is the dagmm repository, the Docker build context.
const repoRoot = "../.."

// dockerfile is what the image test needs from the Dockerfile.
type dockerfile struct {
	build  []string          // the go build command of the build stage, expanded
	env    map[string]string // ARG defaults and ENV of the build stage
	user   string            // USER of the final stage
	labels map[string]string // LABELs of the final stage
}

// parseDockerfile reads the Dockerfile with BuildKit's own parser.
func parseDockerfile(t *testing.T, path string, args map[string]string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a final one", path, len(stages))
	}
	d := dockerfile{env: map[string]string{}, labels: map[string]string{}}
	lex := shell.NewLex(ast.EscapeToken)
	for _, cmd := range stages[0].Commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if v, ok := args[a.Key]; ok {
					d.env[a.Key] = v
				} else if a.Value != nil {
					d.env[a.Key] = *a.Value
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				d.env[kv.Key] = kv.Value
			}
		case *instructions.RunCommand:
			words, err := lex.ProcessWords(strings.Join(c.CmdLine, " "), shell.EnvsFromSlice(environ(d.env)))
			if err != nil {
				t.Fatalf("%s: RUN %s: %v", path, c.CmdLine, err)
			}
			if len(words) > 2 && words[0] == "go" && words[1] == "build" {
				d.build = words
			}
		}
	}
	for _, cmd := range stages[len(stages)-1].Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			d.user = c.User
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				d.labels[kv.Key] = kv.Value
			}
		}
	}
	return d
}

func environ(env map[string]string) []string {
	var s []string
	for k, v := range env {
		s = append(s, k+"="+v)
	}
	return s
}

// userID parses USER uid[:gid], which must be numeric: runAsNonRoot can only
// verify a numeric user.
func userID(user string) (uid, gid int, err error) {
	u, g, hasGroup := strings.Cut(user, ":")
	if uid, err = strconv.Atoi(u); err != nil {
		return 0, 0, err
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// TestDockerfile builds the binary the Dockerfile's way (its go build line,
// ARGs and ENV), checks that it is static, and starts it as the Dockerfile's
// USER, which must be a numeric non-root ID.
func TestDockerfile(t *testing.T) {
	const version = "v0.0.0-imagetest"
	d := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"), map[string]string{"VERSION": version})

	uid, gid, err := userID(d.user)
	if err != nil || uid == 0 {
		t.Fatalf("final stage USER %q: want a numeric non-root uid[:gid] (%v)", d.user, err)
	}
	for _, l := range []string{"title", "source", "version", "revision", "created", "description"} {
		if d.labels["org.opencontainers.image."+l] == "" {
			t.Errorf("final stage: no LABEL org.opencontainers.image.%s", l)
		}
	}
	if d.env["CGO_ENABLED"] != "0" {
		t.Errorf("build stage: CGO_ENABLED=%q, want 0", d.env["CGO_ENABLED"])
	}
	if d.build == nil {
		t.Fatal("build stage: no RUN go build")
	}

	dir, err := os.MkdirTemp("", "dagmm-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the image's user must reach the binary
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dagmm")
	args := append([]string(nil), d.build[1:]...)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	build := exec.Command("go", args...)
	build.Dir = repoRoot
	build.Env = append(os.Environ(), environ(d.env)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	checkStatic(t, bin)

	run := exec.Command(bin, "version")
	if os.Getuid() == 0 {
		run.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	} else {
		t.Logf("not root: running as uid %d, not the image's %d", os.Getuid(), uid)
	}
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("%s version as uid %d: %v\n%s", bin, uid, err, out)
	}
	if !bytes.Contains(out, []byte(version)) {
		t.Errorf("dagmm version printed %q, want the build's version %s (the -ldflags of the Dockerfile)", out, version)
	}
}

// staticProblems says why the ELF file is not static: an interpreter or
// shared libraries.
func staticProblems(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var problems []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			problems = append(problems, "an ELF interpreter (PT_INTERP)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(libs) > 0 {
		problems = append(problems, fmt.Sprintf("shared libraries %v", libs))
	}
	return problems, nil
}

func checkStatic(t *testing.T, path string) {
	t.Helper()
	problems, err := staticProblems(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("%s is not static: %s", path, strings.Join(problems, ", "))
	}
}

// TestStaticProblemsFindsDynamic shows the static check can fail: a cgo
// binary has an interpreter and needs libc.
func TestStaticProblemsFindsDynamic(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc: cannot build a dynamic binary to show the static check fails")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\n// #include <stdio.h>\nimport \"C\"\n\nfunc main() { C.puts(C.CString(\"hi\")) }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dyn")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	problems, err := staticProblems(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 {
		t.Error("a cgo binary passed as static")
	}
}

func TestUserID(t *testing.T) {
	tests := []struct {
		user     string
		uid, gid int
		wantErr  bool
	}{
		{"65532:65532", 65532, 65532, false},
		{"1000", 1000, 1000, false},
		{"0:0", 0, 0, false},
		{"nonroot", 0, 0, true},
		{"65532:nonroot", 0, 0, true},
	}
	for _, tt := range tests {
		uid, gid, err := userID(tt.user)
		if (err != nil) != tt.wantErr || uid != tt.uid || gid != tt.gid {
			t.Errorf("userID(%q) = %d, %d, %v; want %d, %d, error %v", tt.user, uid, gid, err, tt.uid, tt.gid, tt.wantErr)
		}
	}
}
