package datasets

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

func TestLabels(t *testing.T) {
	tests := []struct {
		name    string
		col     *Column
		want    []bool
		wantErr error
		wantRow int // row named in the error, 0 for none
	}{
		{"int", IntColumn("label", []int64{0, 1, 1, 0}), []bool{false, true, true, false}, nil, 0},
		{"float", FloatColumn("label", []float64{1, 0, 0}), []bool{true, false, false}, nil, 0},
		{"bool", BoolColumn("label", []bool{false, true}), []bool{false, true}, nil, 0},
		{"two", IntColumn("label", []int64{0, 2, 1}), nil, ErrProtocol, 2},
		{"half", FloatColumn("label", []float64{0, 1, 0.5}), nil, ErrProtocol, 3},
		{"null", &Column{Name: "label", Type: Int, Ints: []int64{0, 0}, Nulls: []bool{false, true}}, nil, ErrProtocol, 2},
		{"text", StringColumn("label", []string{"a", "b"}), nil, ErrNotNumeric, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(FloatColumn("x", make([]float64, tt.col.Len())), tt.col)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Labels(tab, "label")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				var ce *CellError
				if tt.wantRow > 0 && (!errors.As(err, &ce) || ce.Row != tt.wantRow || ce.Column != "label") {
					t.Errorf("err = %v, want a cell error at row %d, column label", err, tt.wantRow)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("labels = %v, want %v", got, tt.want)
			}
		})
	}
	tab, _ := NewTable(FloatColumn("x", []float64{1}))
	if _, err := Labels(tab, "label"); !errors.Is(err, ErrNoColumn) {
		t.Errorf("missing column: err = %v, want ErrNoColumn", err)
	}
}

func TestAnomalyRatio(t *testing.T) {
	for _, tt := range []struct {
		labels []bool
		want   float64
	}{
		{nil, 0},
		{[]bool{false, false}, 0},
		{[]bool{true, false, false, false}, 0.25},
		{[]bool{true}, 1},
	} {
		if got := AnomalyRatio(tt.labels); got != tt.want {
			t.Errorf("AnomalyRatio(%v) = %v, want %v", tt.labels, got, tt.want)
		}
	}
}

// labelsOf returns n labels of which every k-th (from 0) is an anomaly.
func labelsOf(n, k int) []bool {
	out := make([]bool, n)
	for i := 0; i < n; i += k {
		out[i] = true
	}
	return out
}

func TestSplitNormal(t *testing.T) {
	tests := []struct {
		name      string
		labels    []bool
		fraction  float64
		wantTrain int
		wantTest  int
	}{
		{"paper half", labelsOf(100, 5), 0.5, 40, 60},
		{"odd normal count", labelsOf(10, 4), 0.5, 3, 7}, // 3 anomalies, 7 normal: 3 train, 4+3 test
		{"most", labelsOf(20, 10), 0.9, 16, 4},
		{"no anomalies", make([]bool, 10), 0.5, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SplitNormal(tt.labels, tt.fraction, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Train) != tt.wantTrain || len(s.Test) != tt.wantTest {
				t.Fatalf("train %d, test %d rows; want %d, %d", len(s.Train), len(s.Test), tt.wantTrain, tt.wantTest)
			}
			seen := make(map[int]bool)
			for _, r := range s.Train {
				if tt.labels[r] {
					t.Errorf("anomaly row %d in the training rows", r)
				}
				seen[r] = true
			}
			if !slices.IsSorted(s.Train) {
				t.Errorf("training rows not sorted: %v", s.Train)
			}
			anomalies := 0
			for i, r := range s.Test {
				if seen[r] {
					t.Errorf("row %d both in training and test", r)
				}
				seen[r] = true
				if tt.labels[r] {
					anomalies++
				} else if anomalies > 0 {
					t.Errorf("test position %d: normal row %d after an anomaly", i, r)
				}
			}
			if len(seen) != len(tt.labels) {
				t.Errorf("split covers %d of %d rows", len(seen), len(tt.labels))
			}
			if want := int(math.Round(AnomalyRatio(tt.labels) * float64(len(tt.labels)))); anomalies != want {
				t.Errorf("test holds %d anomalies, want all %d", anomalies, want)
			}
			again, _ := SplitNormal(tt.labels, tt.fraction, 7)
			if !slices.Equal(again.Train, s.Train) || !slices.Equal(again.Test, s.Test) {
				t.Error("the same seed gave another split")
			}
		})
	}
	labels := labelsOf(1000, 5)
	a, _ := SplitNormal(labels, 0.5, 1)
	b, _ := SplitNormal(labels, 0.5, 2)
	if slices.Equal(a.Train, b.Train) {
		t.Error("seeds 1 and 2 gave the same split")
	}
	for _, bad := range []struct {
		labels   []bool
		fraction float64
	}{
		{labelsOf(10, 2), 0},
		{labelsOf(10, 2), 1},
		{labelsOf(10, 2), math.NaN()},
		{[]bool{true, true, false}, 0.5}, // one normal row: none to train on
		{nil, 0.5},
	} {
		if _, err := SplitNormal(bad.labels, bad.fraction, 1); !errors.Is(err, ErrProtocol) {
			t.Errorf("SplitNormal(%v, %v): err = %v, want ErrProtocol", bad.labels, bad.fraction, err)
		}
	}
}

func TestMatrixHelpers(t *testing.T) {
	// 4 rows × 3 columns; column 1 is constant on rows 0 and 2, column 2 everywhere.
	x := []float64{
		1, 5, 9,
		2, 6, 9,
		3, 5, 9,
		4, 7, 9,
	}
	if got, want := Rows(x, 3, []int{2, 0}), []float64{3, 5, 9, 1, 5, 9}; !slices.Equal(got, want) {
		t.Errorf("Rows = %v, want %v", got, want)
	}
	if got, want := SelectColumns(x, 3, []int{2, 0}), []float64{9, 1, 9, 2, 9, 3, 9, 4}; !slices.Equal(got, want) {
		t.Errorf("SelectColumns = %v, want %v", got, want)
	}
	for _, tt := range []struct {
		rows []int
		want []int
	}{
		{nil, []int{0, 1}},
		{[]int{0, 2}, []int{0}},
		{[]int{1}, nil},
		{[]int{}, nil},
	} {
		if got := VaryingColumns(x, 3, tt.rows); !slices.Equal(got, tt.want) {
			t.Errorf("VaryingColumns(rows %v) = %v, want %v", tt.rows, got, tt.want)
		}
	}
	if got := Pick([]string{"a", "b", "c"}, []int{2, 2, 0}); !slices.Equal(got, []string{"c", "c", "a"}) {
		t.Errorf("Pick = %v", got)
	}
}

func TestPercentile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		values []float64
		p      float64
		want   float64
	}{
		// NumPy: np.percentile([4, 1, 3, 2], q) = 1, 1.75, 2.5, 3.97, 4.
		{[]float64{4, 1, 3, 2}, 0, 1},
		{[]float64{4, 1, 3, 2}, 25, 1.75},
		{[]float64{4, 1, 3, 2}, 50, 2.5},
		{[]float64{4, 1, 3, 2}, 99, 3.97},
		{[]float64{4, 1, 3, 2}, 100, 4},
		{[]float64{7}, 30, 7},
		{[]float64{1, 2, inf}, 50, 2},
		{[]float64{1, 2, inf}, 75, inf},
		{[]float64{inf, inf}, 50, inf},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.values)
		got, err := Percentile(in, tt.p)
		if err != nil {
			t.Fatalf("Percentile(%v, %v): %v", tt.values, tt.p, err)
		}
		if !scalar.EqualWithinAbsOrRel(got, tt.want, 1e-12, 1e-12) && got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.values, tt.p, got, tt.want)
		}
		if !slices.Equal(in, tt.values) {
			t.Errorf("Percentile changed its input to %v", in)
		}
	}
	for _, bad := range []struct {
		values []float64
		p      float64
	}{
		{nil, 50}, {[]float64{1}, -1}, {[]float64{1}, 101}, {[]float64{1, math.NaN()}, 50}, {[]float64{1}, math.NaN()},
	} {
		if _, err := Percentile(bad.values, bad.p); !errors.Is(err, ErrProtocol) {
			t.Errorf("Percentile(%v, %v): err = %v, want ErrProtocol", bad.values, bad.p, err)
		}
	}
}

func TestRatioThreshold(t *testing.T) {
	train := []float64{1, 2, 3, 4, 5}
	test := []float64{6, 7, 8, 9, 10}
	// 80th percentile of 1..10: 1 + 0.8·9 = 8.2, so 9 and 10 (20%) lie above.
	got, err := RatioThreshold(0.2, train, test)
	if err != nil {
		t.Fatal(err)
	}
	if !scalar.EqualWithinAbs(got, 8.2, 1e-12) {
		t.Errorf("threshold = %v, want 8.2", got)
	}
	for _, r := range []float64{0, 1, -0.1, math.NaN()} {
		if _, err := RatioThreshold(r, train); !errors.Is(err, ErrProtocol) {
			t.Errorf("ratio %v: err = %v, want ErrProtocol", r, err)
		}
	}
}

func TestDetect(t *testing.T) {
	scores := []float64{0.9, 0.8, 0.7, 0.3, 0.2, math.Inf(1)}
	labels := []bool{true, false, true, true, false, true}
	tests := []struct {
		threshold      float64
		tp, fp, tn, fn int
		p, r, f1       float64
	}{
		{0.5, 3, 1, 1, 1, 0.75, 0.75, 0.75},
		{0.85, 2, 0, 2, 2, 1, 0.5, 2.0 / 3},
		{0.75, 2, 1, 1, 2, 2.0 / 3, 0.5, 4.0 / 7},
		{math.Inf(1), 0, 0, 2, 4, 0, 0, 0}, // nothing flagged: precision 0, not NaN
		{0.9, 1, 0, 2, 3, 1, 0.25, 0.4},    // a score equal to the threshold is not flagged
		{math.Inf(-1), 4, 2, 0, 0, 4.0 / 6, 1, 0.8},
	}
	for _, tt := range tests {
		d, err := Detect(scores, labels, tt.threshold)
		if err != nil {
			t.Fatal(err)
		}
		if d.TP != tt.tp || d.FP != tt.fp || d.TN != tt.tn || d.FN != tt.fn {
			t.Errorf("threshold %v: tp %d fp %d tn %d fn %d, want %d %d %d %d", tt.threshold, d.TP, d.FP, d.TN, d.FN, tt.tp, tt.fp, tt.tn, tt.fn)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"precision", d.Precision, tt.p}, {"recall", d.Recall, tt.r}, {"F1", d.F1, tt.f1}} {
			if !scalar.EqualWithinAbs(c.got, c.want, 1e-12) {
				t.Errorf("threshold %v: %s = %v, want %v", tt.threshold, c.name, c.got, c.want)
			}
		}
	}
	if _, err := Detect(scores, labels[:2], 0); !errors.Is(err, ErrProtocol) {
		t.Errorf("short labels: err = %v, want ErrProtocol", err)
	}
	if _, err := Detect([]float64{math.NaN()}, []bool{true}, 0); !errors.Is(err, ErrProtocol) {
		t.Errorf("NaN score: err = %v, want ErrProtocol", err)
	}
	if _, err := Detect(scores, labels, math.NaN()); !errors.Is(err, ErrProtocol) {
		t.Errorf("NaN threshold: err = %v, want ErrProtocol", err)
	}
}

// bruteAUROC counts the (anomaly, normal) pairs ordered right, ties ½.
func bruteAUROC(scores []float64, labels []bool) float64 {
	var num, den float64
	for i := range scores {
		for j := range scores {
			if !labels[i] || labels[j] {
				continue
			}
			den++
			switch {
			case scores[i] > scores[j]:
				num++
			case scores[i] == scores[j]:
				num += 0.5
			}
		}
	}
	return num / den
}

// bruteAUPRC evaluates average precision from its definition, threshold by
// threshold.
func bruteAUPRC(scores []float64, labels []bool) float64 {
	ts := slices.Clone(scores)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	slices.Reverse(ts)
	pos := 0
	for _, l := range labels {
		if l {
			pos++
		}
	}
	var ap, prevR float64
	for _, th := range ts {
		tp, flagged := 0, 0
		for i, s := range scores {
			if s >= th {
				flagged++
				if labels[i] {
					tp++
				}
			}
		}
		r := float64(tp) / float64(pos)
		ap += (r - prevR) * float64(tp) / float64(flagged)
		prevR = r
	}
	return ap
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name         string
		scores       []float64
		labels       []bool
		auroc, auprc float64
	}{
		// scikit-learn: roc_auc_score([0,0,1,1], [.1,.4,.35,.8]) = 0.75,
		// average_precision_score(...) = 0.8333.
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75, 5.0 / 6},
		{"perfect", []float64{1, 2, 3, 4}, []bool{false, false, true, true}, 1, 1},
		{"inverted", []float64{4, 3, 2, 1}, []bool{false, false, true, true}, 0, 5.0 / 12},
		{"all tied", []float64{1, 1, 1, 1}, []bool{false, true, false, false}, 0.5, 0.25},
		{"infinite anomaly", []float64{math.Inf(1), 1, 2}, []bool{true, false, false}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roc, err := AUROC(tt.scores, tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := AUPRC(tt.scores, tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			if !scalar.EqualWithinAbs(roc, tt.auroc, 1e-12) {
				t.Errorf("AUROC = %v, want %v", roc, tt.auroc)
			}
			if !scalar.EqualWithinAbs(pr, tt.auprc, 1e-12) {
				t.Errorf("AUPRC = %v, want %v", pr, tt.auprc)
			}
		})
	}
	// Random scores with many ties against the definitions.
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 20 {
		n := 5 + rng.IntN(60)
		scores, labels := make([]float64, n), make([]bool, n)
		for i := range n {
			scores[i] = float64(rng.IntN(8))
			labels[i] = rng.Float64() < 0.3
		}
		labels[0], labels[1] = true, false
		roc, err := AUROC(scores, labels)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := AUPRC(scores, labels)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteAUROC(scores, labels); !scalar.EqualWithinAbs(roc, want, 1e-12) {
			t.Errorf("trial %d: AUROC = %v, brute force %v", trial, roc, want)
		}
		if want := bruteAUPRC(scores, labels); !scalar.EqualWithinAbs(pr, want, 1e-12) {
			t.Errorf("trial %d: AUPRC = %v, brute force %v", trial, pr, want)
		}
	}
	for _, bad := range []struct {
		scores []float64
		labels []bool
	}{
		{[]float64{1, 2}, []bool{true, true}},
		{[]float64{1, 2}, []bool{false, false}},
		{[]float64{1, math.NaN()}, []bool{true, false}},
		{[]float64{1}, []bool{true, false}},
	} {
		if _, err := AUROC(bad.scores, bad.labels); !errors.Is(err, ErrProtocol) {
			t.Errorf("AUROC(%v, %v): err = %v, want ErrProtocol", bad.scores, bad.labels, err)
		}
		if _, err := AUPRC(bad.scores, bad.labels); !errors.Is(err, ErrProtocol) {
			t.Errorf("AUPRC(%v, %v): err = %v, want ErrProtocol", bad.scores, bad.labels, err)
		}
	}
}

func TestMeanSD(t *testing.T) {
	for _, tt := range []struct {
		xs       []float64
		mean, sd float64
	}{
		{nil, 0, 0},
		{[]float64{3}, 3, 0},
		{[]float64{1, 2, 3, 4}, 2.5, math.Sqrt(5.0 / 3)},
		{[]float64{0.5, 0.5}, 0.5, 0},
	} {
		m, sd := MeanSD(tt.xs)
		if !scalar.EqualWithinAbs(m, tt.mean, 1e-12) || !scalar.EqualWithinAbs(sd, tt.sd, 1e-12) {
			t.Errorf("MeanSD(%v) = %v, %v; want %v, %v", tt.xs, m, sd, tt.mean, tt.sd)
		}
	}
}

// TestProtocolShared splits the shared thyroid data set as the paper does.
func TestProtocolShared(t *testing.T) {
	tab, err := ReadFile(sharedFile(t, "thyroid.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := Labels(tab, "label")
	if err != nil {
		t.Fatal(err)
	}
	if got := AnomalyRatio(labels); !scalar.EqualWithinAbs(got, 93.0/3772, 1e-12) {
		t.Errorf("anomaly ratio = %v, want 93/3772", got)
	}
	s, err := SplitNormal(labels, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 3679 normal rows: 1839 to train on, 1840 + 93 anomalies to test on.
	if len(s.Train) != 1839 || len(s.Test) != 1840+93 {
		t.Errorf("train %d, test %d rows; want 1839, 1933", len(s.Train), len(s.Test))
	}
}
