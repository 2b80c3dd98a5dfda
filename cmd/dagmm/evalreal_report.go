package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// write prints the table (unless --json went to stdout) and writes --json
// and --markdown.
func (rep *realReport) write(env *cliEnv, jsonOut, mdOut string) error {
	return writeOutputs(env, rep.writeTable, output{jsonOut, rep.writeJSON}, output{mdOut, rep.writeMarkdown})
}

func (rep *realReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *realReport) duration() time.Duration {
	return time.Duration(rep.Seconds * float64(time.Second)).Round(time.Second)
}

// detectorColumns heads the detection tables.
const detectorColumns = "AUROC\tAUPRC\tF1 own\tbest F1\tflagged\tPA F1 own\tPA best F1\tseconds"

func detectorCells(s realSummary, sep string, withSD bool) string {
	f := func(m meanSD) string {
		if withSD && m.SD > 0 {
			return fmt.Sprintf("%.3f ± %.3f", m.Mean, m.SD)
		}
		return fmt.Sprintf("%.3f", m.Mean)
	}
	return strings.Join([]string{f(s.AUROC), f(s.AUPRC), f(s.F1), f(s.BestF1), f(s.Flagged), f(s.PAF1), f(s.PABestF1),
		fmt.Sprintf("%.1f", s.Seconds.Mean)}, sep)
}

func explainerCells(e realExplainer, sep string) string {
	f := func(m meanSD) string {
		if m.SD > 0 {
			return fmt.Sprintf("%.3f ± %.3f", m.Mean, m.SD)
		}
		return fmt.Sprintf("%.3f", m.Mean)
	}
	return f(e.Mean100) + sep + f(e.Mean150)
}

// writeTable prints each machine's figures and the means over machines.
func (rep *realReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d machines, seeds %v, %s\n", rep.Input, len(rep.Machines), rep.Seeds, rep.duration())
	fmt.Fprintf(w, "model: %s\n", strings.Replace(describeConfig(0, rep.Config), "compression 0-", "compression d-", 1))
	fmt.Fprintln(w, "F1 own: point-wise at the method's own threshold (dagmm: the model's; baselines: 99th percentile of their training scores);")
	fmt.Fprintln(w, "PA: point-adjusted (a segment counts as found when any of its rows is flagged), flattering; mean ± sd over seeds.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	sections := append(rep.Machines, realMachine{realPair: realPair{Name: "mean"}, Detectors: rep.Detectors, Explainers: rep.Explainers})
	for _, m := range sections {
		fmt.Fprintf(tw, "\n%s\t%s\t\n", m.Name, detectorColumns)
		for _, d := range m.Detectors {
			fmt.Fprintf(tw, "  %s\t%s\t\n", d.Name, detectorCells(d.Summary, "\t", true))
		}
		if len(m.Explainers) > 0 {
			fmt.Fprintf(tw, "\n%s explanations (%s)\tHitRate@100%%\tHitRate@150%%\t\n", m.Name, explainedRows(m))
			for _, e := range m.Explainers {
				fmt.Fprintf(tw, "  %s\t%s\t\n", e.Name, explainerCells(e, "\t"))
			}
		}
	}
	return tw.Flush()
}

func explainedRows(m realMachine) string {
	if m.ExplainedOf == 0 {
		return "mean over machines"
	}
	if m.Explained < m.ExplainedOf {
		return fmt.Sprintf("%d of %d rows, evenly spaced", m.Explained, m.ExplainedOf)
	}
	return fmt.Sprintf("%d rows", m.Explained)
}

// writeMarkdown writes the figures as Markdown sections (for
// docs/real-metrics.md).
func (rep *realReport) writeMarkdown(w io.Writer) error {
	head := "| | " + strings.ReplaceAll(detectorColumns, "\t", " | ") + " |\n|---|---|---|---|---|---|---|---|---|\n"
	fmt.Fprintf(w, "## Mean over the %d machines\n\n", len(rep.Machines))
	fmt.Fprintf(w, "Mean over machines of each seed's figures, ± the standard deviation over seeds (%v); the baselines draw no random numbers.\n\n", rep.Seeds)
	if len(rep.Detectors) > 0 {
		t := rep.Detectors[0].Summary.Train
		fmt.Fprintf(w, "Training dagmm on a machine takes %.1f s ± %.1f (mean over machines ± sd over seeds, wall time; the rest of its seconds is scoring the test file and explaining with every method).\n\n", t.Mean, t.SD)
	}
	fmt.Fprint(w, head)
	for _, d := range rep.Detectors {
		fmt.Fprintf(w, "| %s | %s |\n", d.Name, detectorCells(d.Summary, " | ", true))
	}
	if len(rep.Explainers) > 0 {
		fmt.Fprintf(w, "\n| explanation, mean over machines | HitRate@100%% | HitRate@150%% |\n|---|---|---|\n")
		for _, e := range rep.Explainers {
			fmt.Fprintf(w, "| %s | %s |\n", e.Name, explainerCells(e, " | "))
		}
	}
	fmt.Fprintf(w, "\n## Per machine\n\n")
	for _, m := range rep.Machines {
		fmt.Fprintf(w, "### %s\n\n", m.Name)
		fmt.Fprintf(w, "%d training rows, %d test rows, %d anomalies (%.1f%%), %d features", m.TrainRows, m.TestRows, m.Anomalies,
			100*float64(m.Anomalies)/float64(max(m.TestRows, 1)), m.Features)
		if len(m.LeftOut) > 0 {
			fmt.Fprintf(w, " (left out, constant in training: %s)", strings.Join(m.LeftOut, ", "))
		}
		fmt.Fprintf(w, "; %.0f s in all", m.Seconds)
		if len(m.Detectors) > 0 {
			fmt.Fprintf(w, ", training dagmm %.1f s a seed", m.Detectors[0].Summary.Train.Mean)
		}
		fmt.Fprint(w, ".\n\n")
		fmt.Fprint(w, head)
		for _, d := range m.Detectors {
			fmt.Fprintf(w, "| %s | %s |\n", d.Name, detectorCells(d.Summary, " | ", true))
		}
		if len(m.Explainers) > 0 {
			fmt.Fprintf(w, "\n| explanation (%s) | HitRate@100%% | HitRate@150%% |\n|---|---|---|\n", explainedRows(m))
			for _, e := range m.Explainers {
				fmt.Fprintf(w, "| %s | %s |\n", e.Name, explainerCells(e, " | "))
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
