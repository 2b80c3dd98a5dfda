package promtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Sample is one series of an instant query's vector result: its labels
// and its value as Prometheus writes it (a string, such as "1" or "NaN").
type Sample struct {
	Metric map[string]string
	Value  string
}

// Alert is one active alert: pending or firing.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

// Query runs expr as an instant query and returns the vector it gives (a
// scalar result is one sample without labels).
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if data.ResultType == "scalar" {
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("query %s: %w", expr, err)
		}
		return []Sample{{Value: fmt.Sprint(v[1])}}, nil
	}
	var vec []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	if err := json.Unmarshal(data.Result, &vec); err != nil {
		return nil, fmt.Errorf("query %s: a %s result: %w", expr, data.ResultType, err)
	}
	out := make([]Sample, len(vec))
	for i, v := range vec {
		out[i] = Sample{Metric: v.Metric, Value: fmt.Sprint(v.Value[1])}
	}
	return out, nil
}

// Alerts returns the active alerts.
func (p *Prometheus) Alerts() ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", &data); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return data.Alerts, nil
}

// api gets path from the HTTP API and decodes the data of a successful
// answer into data.
func (p *Prometheus) api(path string, data any) error {
	resp, err := http.Get(p.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", resp.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}
