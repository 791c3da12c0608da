//! A LightGBM binary classifier read from its text model, predicted row by row exactly as LightGBM does
//! (`GBDT::PredictRaw` then the binary objective's sigmoid): each tree's leaf outputs summed in tree order
//! in f64, then `1 / (1 + exp(-sigmoid * raw))`. Splits are numerical with LightGBM's missing-value rules:
//! NaN is 0 unless the node's missing type is NaN; a node of missing type Zero (|x| <= 1e-35) or NaN sends
//! such values to its default side; otherwise `x <= threshold` goes left. Values with |x| <= 1e-35 are 0,
//! as LightGBM's dense-row reader drops them. Models this does not cover (categorical splits, linear
//! trees, averaged output, several trees per iteration, another objective) are refused with a reason.

use std::fmt;

/// LightGBM's `kZeroThreshold` (a float 1e-35 widened to double).
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;
const DEFAULT_LEFT: u8 = 2;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForestError(pub String);

impl fmt::Display for ForestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lightgbm model: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ForestError> {
    Err(ForestError(msg.into()))
}

/// One split (or a leaf: both children itself, so a walk of fixed length stays on it).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    threshold: f64,
    feature: u32,
    left: u32,
    right: u32,
    decision: u8,
}

impl Node {
    /// The next node for `row` under LightGBM's missing-value rules.
    fn next(&self, row: &[f64]) -> u32 {
        let mut x = row[self.feature as usize];
        let missing = self.missing_type();
        if x.is_nan() && missing != MISSING_NAN {
            x = 0.0;
        }
        let is_missing = (missing == MISSING_ZERO
            && (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x))
            || (missing == MISSING_NAN && x.is_nan());
        let go_left = if is_missing {
            self.decision & DEFAULT_LEFT != 0
        } else {
            x <= self.threshold
        };
        if go_left {
            self.left
        } else {
            self.right
        }
    }

    /// The next node when missing values are 0 already and no node treats a value as missing.
    fn next_plain(&self, row: &[f64]) -> u32 {
        if row[self.feature as usize] <= self.threshold {
            self.left
        } else {
            self.right
        }
    }

    fn missing_type(&self) -> u8 {
        (self.decision >> 2) & 3
    }
}

/// One tree: LightGBM's internal nodes, then its leaves (leaf k is node n_internal + k); `value` holds
/// the leaves' outputs at their node ids; `depth` is the longest root-to-leaf walk.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Vec<Node>,
    value: Vec<f64>,
    depth: usize,
}

impl Tree {
    fn new(
        feature: Vec<u32>,
        threshold: Vec<f64>,
        decision: Vec<u8>,
        left: Vec<i32>,
        right: Vec<i32>,
        leaf_value: Vec<f64>,
    ) -> Result<Tree, ForestError> {
        let n = feature.len();
        let leaves = leaf_value.len();
        let id = |c: i32| -> Option<u32> {
            let node = if c >= 0 {
                Some(c as usize).filter(|&c| c < n)
            } else {
                Some((!c) as usize).filter(|&c| c < leaves).map(|c| n + c)
            };
            node.and_then(|v| u32::try_from(v).ok())
        };
        let mut nodes = Vec::with_capacity(n + leaves);
        for i in 0..n {
            let (Some(l), Some(r)) = (id(left[i]), id(right[i])) else {
                return err("a child index is out of range");
            };
            nodes.push(Node {
                feature: feature[i],
                threshold: threshold[i],
                decision: decision[i],
                left: l,
                right: r,
            });
        }
        for k in 0..leaves {
            let me = u32::try_from(n + k).or_else(|_| err("a tree is too large"))?;
            nodes.push(Node {
                feature: 0,
                threshold: 0.0,
                decision: 0,
                left: me,
                right: me,
            });
        }
        let mut value = vec![0.0; n];
        value.extend(leaf_value);
        // depth by a walk from the root (a tree is acyclic; more steps than nodes means it is not)
        let mut depth = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((node, d)) = stack.pop() {
            if d > nodes.len() {
                return err("a tree has a cycle");
            }
            if node < n {
                stack.push((nodes[node].left as usize, d + 1));
                stack.push((nodes[node].right as usize, d + 1));
            } else {
                depth = depth.max(d);
            }
        }
        Ok(Tree {
            nodes,
            value,
            depth,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    trees: Vec<Tree>,
    n_features: usize,
    sigmoid: f64,
    plain: bool, // no node treats a value as missing: NaN is 0 everywhere
}

fn values<T: std::str::FromStr>(key: &str, text: &str) -> Result<Vec<T>, ForestError> {
    text.split_whitespace()
        .map(|v| {
            v.parse::<T>()
                .or_else(|_| err(format!("{key}: cannot read {v:?}")))
        })
        .collect()
}

fn parse_tree(fields: &[(&str, &str)]) -> Result<Tree, ForestError> {
    let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let need = |key: &str| get(key).ok_or_else(|| ForestError(format!("a tree has no {key}")));
    if get("num_cat").is_some_and(|v| v.trim() != "0") {
        return err("categorical splits are not supported");
    }
    if get("is_linear").is_some_and(|v| v.trim() != "0") {
        return err("linear trees are not supported");
    }
    let num_leaves: usize = values("num_leaves", need("num_leaves")?)?
        .first()
        .copied()
        .ok_or_else(|| ForestError("num_leaves is empty".into()))?;
    let leaf_value: Vec<f64> = values("leaf_value", need("leaf_value")?)?;
    if leaf_value.len() != num_leaves || num_leaves == 0 {
        return err(format!(
            "{} leaf values for {num_leaves} leaves",
            leaf_value.len()
        ));
    }
    if num_leaves == 1 {
        return Tree::new(vec![], vec![], vec![], vec![], vec![], leaf_value);
    }
    let feature: Vec<u32> = values("split_feature", need("split_feature")?)?;
    let threshold: Vec<f64> = values("threshold", need("threshold")?)?;
    let decision: Vec<u8> = values("decision_type", need("decision_type")?)?;
    let left: Vec<i32> = values("left_child", need("left_child")?)?;
    let right: Vec<i32> = values("right_child", need("right_child")?)?;
    let n = num_leaves - 1;
    let lens = [
        feature.len(),
        threshold.len(),
        decision.len(),
        left.len(),
        right.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return err(format!(
            "a tree of {num_leaves} leaves has node arrays of lengths {lens:?}"
        ));
    }
    if decision.iter().any(|d| d & 1 != 0) {
        return err("categorical splits are not supported");
    }
    Tree::new(feature, threshold, decision, left, right, leaf_value)
}

impl Forest {
    /// Reads LightGBM's text model (`Booster.model_to_string`), keeping the first `num_iteration` trees
    /// (0: all).
    pub fn from_lightgbm(text: &str, num_iteration: usize) -> Result<Forest, ForestError> {
        let mut header: Vec<(&str, &str)> = Vec::new();
        let mut trees = Vec::new();
        let mut current: Option<Vec<(&str, &str)>> = None;
        for line in text.lines() {
            let line = line.trim();
            if line == "end of trees" {
                break;
            }
            if line == "average_output" {
                // a flag line with no value (random forest): the trees' mean, not their sum
                return err("averaged output (random forest) is not supported");
            }
            if line.starts_with("Tree=") {
                if let Some(fields) = current.take() {
                    trees.push(parse_tree(&fields)?);
                }
                current = Some(Vec::new());
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                match current.as_mut() {
                    Some(fields) => fields.push((k, v)),
                    None => header.push((k, v)),
                }
            }
        }
        if let Some(fields) = current.take() {
            trees.push(parse_tree(&fields)?);
        }
        let get = |key: &str| {
            header
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim())
        };
        if get("num_tree_per_iteration") != Some("1") {
            return err("only one tree per iteration is supported");
        }
        let objective = get("objective").unwrap_or("");
        let sigmoid = match objective.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["binary", s] => s
                .strip_prefix("sigmoid:")
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| ForestError(format!("objective {objective:?}")))?,
            _ => {
                return err(format!(
                    "only the binary objective is supported, got {objective:?}"
                ))
            }
        };
        let n_features = get("max_feature_idx")
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| ForestError("no max_feature_idx".into()))?
            + 1;
        if trees
            .iter()
            .any(|t| t.nodes.iter().any(|n| n.feature as usize >= n_features))
        {
            return err("a split feature is out of range");
        }
        if num_iteration > 0 {
            trees.truncate(num_iteration);
        }
        let plain = trees
            .iter()
            .all(|t| t.nodes.iter().all(|n| n.missing_type() == 0));
        Ok(Forest {
            trees,
            n_features,
            sigmoid,
            plain,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Probabilities of the rows of `x` (row-major, `n_features` columns). Rows walk each tree in blocks
    /// of `BLOCK`, one step for every row in turn, the tree's depth in steps (a leaf stays put): the rows'
    /// walks are independent, so their memory loads overlap instead of waiting one on another. When no
    /// node treats a value as missing, NaN becomes 0 once per value and each step is one comparison.
    /// Up to `threads` threads share the rows in contiguous parts of at least `MIN_ROWS_PER_THREAD`.
    pub fn predict(&self, x: &[f64], threads: usize) -> Result<Vec<f64>, ForestError> {
        const MIN_ROWS_PER_THREAD: usize = 2048;
        let nf = self.n_features;
        if nf == 0 || !x.len().is_multiple_of(nf) {
            return err(format!("{} values are not rows of {nf} features", x.len()));
        }
        let n = x.len() / nf;
        let parts = threads.clamp(1, (n / MIN_ROWS_PER_THREAD).max(1));
        if parts == 1 {
            return Ok(self.predict_rows(x));
        }
        let per = n.div_ceil(parts);
        let out = std::thread::scope(|scope| {
            let handles: Vec<_> = x
                .chunks(per * nf)
                .map(|part| scope.spawn(move || self.predict_rows(part)))
                .collect();
            let parts: Vec<Vec<f64>> = handles
                .into_iter()
                .map(|h| h.join().expect("predict thread"))
                .collect();
            parts.concat()
        });
        Ok(out)
    }

    fn predict_rows(&self, x: &[f64]) -> Vec<f64> {
        const BLOCK: usize = 16;
        let nf = self.n_features;
        let mut out = Vec::with_capacity(x.len() / nf);
        let mut rows = vec![0.0; BLOCK * nf];
        for block in x.chunks(BLOCK * nf) {
            let m = block.len() / nf;
            for (r, &v) in rows.iter_mut().zip(block) {
                let zero = v.abs() <= ZERO_THRESHOLD || (self.plain && v.is_nan());
                *r = if zero { 0.0 } else { v };
            }
            let mut raw = [0.0f64; BLOCK];
            let mut node = [0u32; BLOCK];
            for tree in &self.trees {
                node[..m].fill(0);
                for _ in 0..tree.depth {
                    for (row, nd) in rows.chunks_exact(nf).zip(node[..m].iter_mut()) {
                        let at = &tree.nodes[*nd as usize];
                        *nd = if self.plain {
                            at.next_plain(row)
                        } else {
                            at.next(row)
                        };
                    }
                }
                for (acc, &nd) in raw[..m].iter_mut().zip(&node[..m]) {
                    *acc += tree.value[nd as usize];
                }
            }
            let prob = |r: f64| 1.0 / (1.0 + (-self.sigmoid * r).exp());
            out.extend(raw[..m].iter().map(|&r| prob(r)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
max_feature_idx=1\nobjective=binary sigmoid:1\nfeature_names=a b\n\n\
Tree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0.5 1.0000000180025095e-35\n\
decision_type=2 10\nleft_child=-1 -2\nright_child=1 -3\nleaf_value=0.25 -0.5 1\nis_linear=0\n\n\
Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\ndecision_type=\nleft_child=\nright_child=\n\
leaf_value=0.125\nis_linear=0\n\nend of trees\n";

    fn prob(raw: f64) -> f64 {
        1.0 / (1.0 + (-raw).exp())
    }

    #[test]
    fn hand_computed_rows() {
        let f = Forest::from_lightgbm(MODEL, 0).unwrap();
        let x = [
            0.5,
            9.0,
            0.6,
            -1.0,
            0.6,
            1.0,
            f64::NAN,
            3.0,
            0.6,
            f64::NAN,
            0.6,
            1e-40,
        ];
        let p = f.predict(&x, 1).unwrap();
        // row 0: 0.5 <= 0.5 left (leaf 0); row 1: right, -1 <= ~0 left (leaf 1); row 2: right, leaf 2;
        // row 3: NaN in a None node is 0 -> left; row 4: NaN at a NaN node (type 10 = 8 + 2: default
        // left) -> leaf 1; row 5: 1e-40 is 0 -> left.
        let want = [0.375, -0.375, 1.125, 0.375, -0.375, -0.375].map(prob);
        assert_eq!(p, want);
        let one = Forest::from_lightgbm(MODEL, 1)
            .unwrap()
            .predict(&x[..2], 1)
            .unwrap();
        assert_eq!(one, vec![prob(0.25)]);
    }

    #[test]
    fn threads_share_the_rows_in_order() {
        let f = Forest::from_lightgbm(MODEL, 0).unwrap();
        let x: Vec<f64> = (0..2 * 10_000)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let one = f.predict(&x, 1).unwrap();
        assert_eq!(one.len(), 10_000);
        assert_eq!(f.predict(&x, 3).unwrap(), one);
    }

    #[test]
    fn refuses_what_it_does_not_cover() {
        let cases = [
            MODEL.replace("objective=binary sigmoid:1", "objective=regression"),
            MODEL.replace("num_tree_per_iteration=1", "num_tree_per_iteration=3"),
            MODEL.replace("feature_names=a b\n", "feature_names=a b\naverage_output\n"),
            MODEL.replace("decision_type=2 10", "decision_type=1 10"),
            MODEL.replace("is_linear=0\n\nTree=1", "is_linear=1\n\nTree=1"),
            MODEL.replace("left_child=-1 -2", "left_child=-1 5"),
            MODEL.replace("split_feature=0 1", "split_feature=0 2"),
            MODEL.replace("leaf_value=0.25 -0.5 1", "leaf_value=0.25 -0.5"),
        ];
        for text in &cases {
            assert!(Forest::from_lightgbm(text, 0).is_err(), "{text}");
        }
        let f = Forest::from_lightgbm(MODEL, 0).unwrap();
        assert!(f.predict(&[1.0, 2.0, 3.0], 1).is_err());
    }
}
