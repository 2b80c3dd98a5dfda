// Package datasets reads, writes and generates the tables dagmm trains on and
// scores.
//
// A [Table] holds every column of a file, in file order, with its type: float,
// integer, boolean, string or timestamp (see [Type]). Reading a file and
// writing it back keeps every column, so the score command can copy host,
// timestamp and label columns through and append its own (energy, anomaly).
//
// # Files
//
// [ReadFile] and [WriteFile] choose the format by the file name's extension:
// ".parquet" (Apache Parquet, through github.com/parquet-go/parquet-go) or
// ".csv" (comma-separated, with a header row), in any letter case. Any other
// extension is refused. [ReadCSV], [WriteCSV], [ReadParquet] and
// [WriteParquet] work on readers and writers.
//
// Parquet: any flat schema of boolean, int32, int64 (signed or unsigned
// annotations), float, double, string / enum / JSON / plain byte array, date,
// timestamp (millis, micros, nanos) and legacy int96 timestamp columns,
// required or optional (a null is kept as a null: [Column.Nulls]). Timestamps
// not adjusted to UTC are read as UTC. Nested,
// repeated and other logical types (decimal, time of day, UUID, ...) are
// refused with an error that names the column.
//
// CSV: the first record is the header; every column is typed from its cells
// (see [ReadCSV]). A missing or non-numeric value in a numeric column is an
// error that names the row, the column and the value. CSV has no nulls: a null
// is written as an empty cell.
//
// Rows are numbered from 1 over the data rows of the source file (the header
// is not a row), in every error message; [Table.SourceRow] keeps that number
// through [Table.Take] and [RemoveEvents].
//
// # Training data
//
// [SelectFeatures] chooses the feature columns (by name, or every numeric
// column except those named in [DefaultExclude]), [RemoveEvents] drops the
// rows the existing monitoring already flagged, and [Matrix] builds the n×d
// float64 matrix, refusing NaN, ±Inf and missing values.
//
// # Synthetic data
//
// [Generate] makes the seed experiment's data: correlated host metrics with a
// few injected anomalies that break the correlation, labelled with their
// cause. [GenerateFleet] makes a fleet of such hosts whose normal behaviour
// differs by role (database, web, batch, cache), with labelled anomalies of
// several kinds, contextual ones among them: values ordinary on a host of
// another role, anomalous on this one.
//
// Nothing in this package keeps state between calls. A [Table] is not safe for
// concurrent modification; concurrent reads are safe.
package datasets
