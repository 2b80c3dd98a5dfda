package datasets
import ("testing";"io")
func BenchmarkDebugWritePQ(b *testing.B) {
	tab, err := ReadFile(sharedFile(b, "kddcup99.parquet"))
	if err != nil { b.Fatal(err) }
	tab = tab.Take(func() []int { r := make([]int, 100000); for i := range r { r[i] = i }; return r }())
	b.ResetTimer()
	for b.Loop() { if err := WriteParquet(io.Discard, tab); err != nil { b.Fatal(err) } }
}
