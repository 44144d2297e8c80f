//! Go text/template engine (being written; the lead added this line only so the workspace manifest loads — replace freely).
