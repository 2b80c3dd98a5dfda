package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/floats/scalar"

	"github.com/dagmm/dagmm/model"
)

var oipFeatures = []string{"cpu_usage", "mem_usage", "disk_busy", "net_in_bps"}

func TestDecodeInfer(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		n          int
		x          []float64
		outputs    []string
		err        string // substring of the error; "" for success
	}{
		{"flat", `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[1,2,3,4,5,6,7,8]}]}`, 2, []float64{1, 2, 3, 4, 5, 6, 7, 8}, allOutputs, ""},
		{"nested", `{"id":"r1","inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[[1,2,3,4],[5,6,7,8e3]]}]}`, 2, []float64{1, 2, 3, 4, 5, 6, 7, 8e3}, allOutputs, ""},
		{"fp32 and outputs", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,-2.5,3e-3,0]}],"outputs":[{"name":"anomaly"},{"name":"energy"}]}`, 1, []float64{1, -2.5, 3e-3, 0}, []string{"anomaly", "energy"}, ""},
		{"empty", `{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP64","data":[]}]}`, 0, []float64{}, allOutputs, ""},
		{"columns", `{"inputs":[{"name":"mem_usage","shape":[2],"datatype":"FP64","data":[2,6]},{"name":"cpu_usage","shape":[2,1],"datatype":"FP64","data":[[1],[5]]},` +
			`{"name":"net_in_bps","shape":[2],"datatype":"FP64","data":[4,8]},{"name":"disk_busy","shape":[2],"datatype":"FP64","data":[3,7]}]}`, 2, []float64{1, 2, 3, 4, 5, 6, 7, 8}, allOutputs, ""},
		{"parameters ignored", `{"parameters":{"p":[1,2,{"q":[3]}]},"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","parameters":{"r":1},"data":[1,2,3,4]}]}`, 1, []float64{1, 2, 3, 4}, allOutputs, ""},

		{"malformed", `{"inputs":[`, 0, nil, nil, "malformed JSON"},
		{"inputs not an array", `{"inputs":{"name":"x"}}`, 0, nil, nil, `"inputs" is not an array`},
		{"too many inputs", `{"inputs":[{},{},{},{},{}]}`, 0, nil, nil, "more than 4 inputs"},
		{"too many outputs", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}],"outputs":[{},{},{},{},{},{}]}`, 0, nil, nil, "more than 5 outputs"},
		{"long shape", `{"inputs":[{"name":"x","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"datatype":"FP64","data":[1,2,3,4]}]}`, 0, nil, nil, `input "x": shape of 69 bytes`},
		{"input not an object", `{"inputs":[1]}`, 0, nil, nil, "inputs element 0"},
		{"not an object", `[1,2]`, 0, nil, nil, "the body is a JSON array, want an object"},
		{"no inputs", `{}`, 0, nil, nil, `no "inputs"`},
		{"datatype", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}`, 0, nil, nil, `datatype "INT64"`},
		{"wrong width", `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}`, 0, nil, nil, "want [n, 4]"},
		{"rank 1", `{"inputs":[{"name":"x","shape":[4],"datatype":"FP64","data":[1,2,3,4]}]}`, 0, nil, nil, "want [n, 4]"},
		{"negative dim", `{"inputs":[{"name":"x","shape":[-1,4],"datatype":"FP64","data":[1,2,3,4]}]}`, 0, nil, nil, "negative"},
		{"too many samples", `{"inputs":[{"name":"x","shape":[11,4],"datatype":"FP64","data":[]}]}`, 0, nil, nil, "more than the limit of 10"},
		{"short data", `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[1,2,3,4,5]}]}`, 0, nil, nil, "5 elements, the shape holds 8"},
		{"long data", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4,5]}]}`, 0, nil, nil, "more than the 4 elements"},
		{"ragged", `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[[1,2,3,4],[5,6,7]]}]}`, 0, nil, nil, "has 3 elements, the shape wants 4"},
		{"string value", `{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[1,2,3,4,5,"NaN",7,8]}]}`, 0, nil, nil, `data element 5 (sample 1, feature "mem_usage"): want a number, got a string`},
		{"null value", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,null,3,4]}]}`, 0, nil, nil, `feature "mem_usage"): want a number, got null`},
		{"overflow", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,1e400,4]}]}`, 0, nil, nil, `feature "disk_busy"): 1e400 is beyond the range`},
		{"no data", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64"}]}`, 0, nil, nil, `no "data"`},
		{"data object", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":{"a":1}}]}`, 0, nil, nil, "got an object"},
		{"unknown output", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}],"outputs":[{"name":"z"}]}`, 0, nil, nil, `output "z" is unknown`},
		{"column unknown", `{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]},{"name":"b","shape":[1],"datatype":"FP64","data":[1]}]}`, 0, nil, nil, "2 inputs"},
		{"column not a feature", `{"inputs":[{"name":"cpu_usage","shape":[1],"datatype":"FP64","data":[1]},{"name":"mem_usage","shape":[1],"datatype":"FP64","data":[1]},` +
			`{"name":"disk_busy","shape":[1],"datatype":"FP64","data":[1]},{"name":"gpu","shape":[1],"datatype":"FP64","data":[1]}]}`, 0, nil, nil, `input "gpu" is not a feature`},
		{"column lengths", `{"inputs":[{"name":"cpu_usage","shape":[1],"datatype":"FP64","data":[1]},{"name":"mem_usage","shape":[2],"datatype":"FP64","data":[1,2]},` +
			`{"name":"disk_busy","shape":[1],"datatype":"FP64","data":[1]},{"name":"net_in_bps","shape":[1],"datatype":"FP64","data":[1]}]}`, 0, nil, nil, "other inputs have 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, req, err := decodeInfer([]byte(tc.body), oipFeatures, 10, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errInfer) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.n != tc.n || !floats.Equal(b.x, tc.x) || strings.Join(b.outputs, ",") != strings.Join(tc.outputs, ",") {
				t.Errorf("n %d x %v outputs %v, want %d %v %v", b.n, b.x, b.outputs, tc.n, tc.x, tc.outputs)
			}
			if req == nil || req.ID != b.id {
				t.Errorf("request %+v", req)
			}
		})
	}
}

// FuzzDecodeInfer checks that the decoder never panics, that what it
// accepts is consistent (n × d finite values), and that re-encoding the
// accepted samples as a flat tensor decodes to the same values.
func FuzzDecodeInfer(f *testing.F) {
	for _, s := range []string{
		`{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[1,2,3,4,5,6,7,8]}]}`,
		`{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[[1,2,3,4],[5,6,7,8]]}]}`,
		`{"inputs":[{"name":"cpu_usage","shape":[1],"datatype":"FP64","data":[1]},{"name":"mem_usage","shape":[1,1],"datatype":"FP64","data":[[2]]},` +
			`{"name":"disk_busy","shape":[1],"datatype":"FP64","data":[3]},{"name":"net_in_bps","shape":[1],"datatype":"FP64","data":[4]}]}`,
		`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1e308,-0,0.5e-3,-7]}],"outputs":[{"name":"share"}]}`,
		`{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP64","data":[]}]}`,
		`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[[[1]]]}]}`,
		`{"inputs":[{"name":"x","shape":[9223372036854775807,4],"datatype":"FP64","data":[]}]}`,
		`{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[01,2,3,4]}]}`,
		`{"inputs":null}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, _, err := decodeInfer(body, oipFeatures, 100, nil)
		if err != nil {
			if !errors.Is(err, errInfer) {
				t.Fatalf("error %v does not wrap errInfer", err)
			}
			return
		}
		d := len(oipFeatures)
		if b.n < 0 || b.n > 100 || len(b.x) != b.n*d {
			t.Fatalf("n %d with %d values", b.n, len(b.x))
		}
		for _, v := range b.x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite value %v accepted", v)
			}
		}
		data, _ := json.Marshal(append([]float64{}, b.x...))
		again := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[%d,%d],"datatype":"FP64","data":%s}]}`, b.n, d, data)
		b2, _, err := decodeInfer([]byte(again), oipFeatures, 100, nil)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v\n%s", err, again)
		}
		if !floats.Equal(b.x, b2.x) {
			t.Fatalf("round trip changed the values: %v -> %v", b.x, b2.x)
		}
	})
}

func TestInferEndpoint(t *testing.T) {
	path, m := writeModel(t, t.TempDir(), 1)
	r := start(t, httpOnly(path))
	s, _ := model.NewScorer(m)
	normal, anomalies := testData(t, m, 3, 1, 11)
	x := append(append([]float64{}, normal...), anomalies...)
	n, d := len(x)/4, 4
	data, _ := json.Marshal(x)
	for _, p := range []string{"/v2/models/dagmm/infer", "/v2/models/dagmm/versions/" + r.Model().Version + "/infer"} {
		body := fmt.Sprintf(`{"id":"req-1","inputs":[{"name":"input-0","shape":[%d,%d],"datatype":"FP64","data":%s}]}`, n, d, data)
		code, resp := r.post(t, p, body)
		if code != 200 {
			t.Fatalf("POST %s: %d %s", p, code, resp)
		}
		var out struct {
			ModelName    string `json:"model_name"`
			ModelVersion string `json:"model_version"`
			ID           string `json:"id"`
			Outputs      []struct {
				Name     string            `json:"name"`
				Datatype string            `json:"datatype"`
				Shape    []int             `json:"shape"`
				Data     []json.RawMessage `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			t.Fatalf("%v: %s", err, resp)
		}
		if out.ModelName != "dagmm" || out.ModelVersion != r.Model().Version || out.ID != "req-1" || len(out.Outputs) != len(allOutputs) {
			t.Fatalf("response %s", resp)
		}
		for _, o := range out.Outputs {
			for i := range n {
				want, _ := s.Score(x[i*d : (i+1)*d])
				switch o.Name {
				case OutputEnergy:
					var e float64
					json.Unmarshal(o.Data[i], &e)
					if !scalar.EqualWithinAbsOrRel(e, want.Energy, 1e-12, 1e-12) {
						t.Errorf("energy %d: %v, want %v", i, e, want.Energy)
					}
				case OutputAnomaly:
					if string(o.Data[i]) != fmt.Sprint(want.Anomaly) {
						t.Errorf("anomaly %d: %s, want %v", i, o.Data[i], want.Anomaly)
					}
				case OutputShare, OutputExpected:
					if len(o.Data) != n*d || len(o.Shape) != 2 {
						t.Fatalf("%s: shape %v with %d values", o.Name, o.Shape, len(o.Data))
					}
					wantV := want.Share
					if o.Name == OutputExpected {
						wantV = want.Expected
					}
					for j := range d {
						var v float64
						json.Unmarshal(o.Data[i*d+j], &v)
						if !scalar.EqualWithinAbsOrRel(v, wantV[j], 1e-12, 1e-12) {
							t.Errorf("%s[%d,%d] = %v, want %v", o.Name, i, j, v, wantV[j])
						}
					}
				}
			}
		}
		if string(out.Outputs[1].Data[n-1]) != "true" {
			t.Errorf("the injected anomaly is not flagged: %s", resp)
		}
	}
	// Errors are 400 JSON naming the problem.
	code, resp := r.post(t, "/v2/models/dagmm/infer", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,"x",4]}]}`)
	if code != 400 || !strings.Contains(string(resp), `feature \"disk_busy\"`) {
		t.Errorf("bad tensor: %d %s", code, resp)
	}
	code, resp = r.post(t, "/v2/models/other/infer", `{}`)
	if code != 404 || !json.Valid(resp) {
		t.Errorf("unknown model: %d %s", code, resp)
	}
}
