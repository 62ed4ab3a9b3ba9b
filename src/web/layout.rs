//! A layered drawing of a DAG, left to right, computed on the server.
//!
//! The classic recipe, kept small:
//! 1. **layers**: each node goes one column right of its furthest dependency
//!    (longest path from the sources);
//! 2. **dummies**: an edge spanning several columns gets a waypoint in each
//!    column it crosses, so it is routed between the boxes, not through them;
//! 3. **order**: within each column, nodes are sorted by the mean position of
//!    their neighbours (barycenter), sweeping right and left a few times and
//!    keeping the order with the fewest crossings;
//! 4. **coordinates**: columns at a fixed pitch, each column centred vertically.
//!
//! Pure: ids and edges in, positions and edge routes out.

use std::collections::VecDeque;

/// Width of a node box.
pub(super) const NODE_W: f64 = 170.0;
/// Height of a node box.
pub(super) const NODE_H: f64 = 54.0;
/// Horizontal gap between columns.
const GAP_X: f64 = 40.0;
/// Vertical gap between boxes of a column.
const GAP_Y: f64 = 18.0;
/// Height a waypoint takes in its column.
const DUMMY_H: f64 = 14.0;
/// Margin around the drawing.
pub(super) const MARGIN: f64 = 16.0;
/// Barycenter sweeps (each one right then left).
const SWEEPS: usize = 6;

/// Where a node's box goes (its top-left corner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Placed {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Column (0 for a source).
    pub layer: usize,
}

/// How an edge is drawn: from the source's right side through its waypoints to
/// the target's left side.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Route {
    /// Index of the source node.
    pub source: usize,
    /// Index of the target node.
    pub target: usize,
    /// Points from start to end; consecutive pairs inside one column are
    /// straight, pairs across a gap are curves.
    pub points: Vec<(f64, f64)>,
}

/// A laid-out DAG.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    /// One entry per node, in input order.
    pub nodes: Vec<Placed>,
    /// One entry per edge, in input order.
    pub routes: Vec<Route>,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing.
    pub height: f64,
}

/// Lays out `count` nodes joined by `edges` (source index, target index). Edges
/// that would go backwards (a cycle, which a validated plan never has) are drawn
/// straight and ignored for layering.
pub(super) fn layout(count: usize, edges: &[(usize, usize)]) -> Layout {
    let layers = layers(count, edges);
    let mut graph = Layered::new(&layers, edges);
    graph.order();
    graph.place(count, edges)
}

/// Longest-path layering; nodes on a cycle (never in a valid plan) go after the rest.
fn layers(count: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indegree = vec![0usize; count];
    let mut succs = vec![Vec::new(); count];
    for &(s, t) in edges {
        if s < count && t < count && s != t {
            succs[s].push(t);
            indegree[t] += 1;
        }
    }
    let mut layer = vec![0usize; count];
    let mut queue: VecDeque<usize> = (0..count).filter(|&v| indegree[v] == 0).collect();
    let mut seen = vec![false; count];
    while let Some(v) = queue.pop_front() {
        seen[v] = true;
        for &t in &succs[v] {
            layer[t] = layer[t].max(layer[v] + 1);
            indegree[t] -= 1;
            if indegree[t] == 0 {
                queue.push_back(t);
            }
        }
    }
    let last = layer.iter().copied().max().unwrap_or(0);
    for (v, done) in seen.iter().enumerate() {
        if !done {
            layer[v] = last + 1;
        }
    }
    layer
}

/// The layered graph: real nodes and waypoints, column by column.
struct Layered {
    /// Column of each vertex (real nodes first, then waypoints).
    layer: Vec<usize>,
    /// Whether a vertex is a waypoint.
    dummy: Vec<bool>,
    /// Neighbours one column to the left / right.
    left: Vec<Vec<usize>>,
    right: Vec<Vec<usize>>,
    /// Vertices of each column, in drawing order.
    columns: Vec<Vec<usize>>,
    /// Each input edge's chain of vertices (source, waypoints…, target), or
    /// `None` for an edge drawn straight.
    chains: Vec<Option<Vec<usize>>>,
}

impl Layered {
    fn new(layers: &[usize], edges: &[(usize, usize)]) -> Self {
        let count = layers.len();
        let mut graph = Layered {
            layer: layers.to_vec(),
            dummy: vec![false; count],
            left: vec![Vec::new(); count],
            right: vec![Vec::new(); count],
            columns: Vec::new(),
            chains: Vec::with_capacity(edges.len()),
        };
        for &(s, t) in edges {
            if s >= count || t >= count || layers[t] <= layers[s] {
                graph.chains.push(None);
                continue;
            }
            let mut chain = vec![s];
            for layer in layers[s] + 1..layers[t] {
                let v = graph.layer.len();
                graph.layer.push(layer);
                graph.dummy.push(true);
                graph.left.push(Vec::new());
                graph.right.push(Vec::new());
                chain.push(v);
            }
            chain.push(t);
            for pair in chain.windows(2) {
                graph.right[pair[0]].push(pair[1]);
                graph.left[pair[1]].push(pair[0]);
            }
            graph.chains.push(Some(chain));
        }
        let columns = graph.layer.iter().copied().max().map_or(0, |l| l + 1);
        graph.columns = vec![Vec::new(); columns];
        for (v, &layer) in graph.layer.iter().enumerate() {
            graph.columns[layer].push(v);
        }
        graph
    }

    /// Barycenter sweeps; keeps the order with the fewest crossings.
    fn order(&mut self) {
        let mut best = self.columns.clone();
        let mut fewest = self.crossings();
        for _ in 0..SWEEPS {
            for c in 1..self.columns.len() {
                self.sort_by_neighbours(c, true);
            }
            for c in (0..self.columns.len().saturating_sub(1)).rev() {
                self.sort_by_neighbours(c, false);
            }
            let crossings = self.crossings();
            if crossings < fewest {
                fewest = crossings;
                best = self.columns.clone();
            }
            if fewest == 0 {
                break;
            }
        }
        self.columns = best;
    }

    /// Sorts column `c` by the mean position of each vertex's neighbours in the
    /// column to its left (`from_left`) or right; vertices without any keep
    /// their place.
    fn sort_by_neighbours(&mut self, c: usize, from_left: bool) {
        let other = if from_left { c - 1 } else { c + 1 };
        let mut position = vec![0usize; self.layer.len()];
        for (i, &v) in self.columns[other].iter().enumerate() {
            position[v] = i;
        }
        let mut keyed: Vec<(f64, usize)> = self.columns[c]
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let neighbours = if from_left {
                    &self.left[v]
                } else {
                    &self.right[v]
                };
                let key = if neighbours.is_empty() {
                    i as f64
                } else {
                    neighbours.iter().map(|&n| position[n] as f64).sum::<f64>()
                        / neighbours.len() as f64
                };
                (key, v)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.columns[c] = keyed.into_iter().map(|(_, v)| v).collect();
    }

    /// Edge crossings between neighbouring columns.
    fn crossings(&self) -> usize {
        let mut position = vec![0usize; self.layer.len()];
        for column in &self.columns {
            for (i, &v) in column.iter().enumerate() {
                position[v] = i;
            }
        }
        let mut total = 0;
        for column in &self.columns {
            let mut segments: Vec<(usize, usize)> = column
                .iter()
                .flat_map(|&v| self.right[v].iter().map(move |&w| (v, w)))
                .map(|(v, w)| (position[v], position[w]))
                .collect();
            segments.sort_unstable();
            for (i, a) in segments.iter().enumerate() {
                total += segments[i + 1..]
                    .iter()
                    .filter(|b| b.0 > a.0 && b.1 < a.1)
                    .count();
            }
        }
        total
    }

    fn place(&self, count: usize, edges: &[(usize, usize)]) -> Layout {
        let height_of = |v: usize| if self.dummy[v] { DUMMY_H } else { NODE_H };
        let column_height = |column: &Vec<usize>| -> f64 {
            column.iter().map(|&v| height_of(v)).sum::<f64>()
                + GAP_Y * column.len().saturating_sub(1) as f64
        };
        let tallest = self.columns.iter().map(column_height).fold(0.0, f64::max);
        // Centre of each vertex: x of its column's left edge, y of its middle.
        let mut at = vec![(0.0, 0.0); self.layer.len()];
        for (c, column) in self.columns.iter().enumerate() {
            let x = MARGIN + c as f64 * (NODE_W + GAP_X);
            let mut y = MARGIN + (tallest - column_height(column)) / 2.0;
            for &v in column {
                at[v] = (x, y + height_of(v) / 2.0);
                y += height_of(v) + GAP_Y;
            }
        }
        let nodes = (0..count)
            .map(|v| Placed {
                x: at[v].0,
                y: at[v].1 - NODE_H / 2.0,
                layer: self.layer[v],
            })
            .collect();
        let routes = edges
            .iter()
            .zip(&self.chains)
            .map(|(&(source, target), chain)| {
                let mut points = Vec::new();
                match chain {
                    Some(chain) => {
                        for (i, &v) in chain.iter().enumerate() {
                            let (x, y) = at[v];
                            if i > 0 {
                                points.push((x, y));
                            }
                            if i + 1 < chain.len() {
                                points.push((x + NODE_W, y));
                            }
                        }
                    }
                    None if source < count && target < count => {
                        points.push((at[source].0 + NODE_W, at[source].1));
                        points.push(at[target]);
                    }
                    None => {}
                }
                Route {
                    source,
                    target,
                    points,
                }
            })
            .collect();
        Layout {
            nodes,
            routes,
            width: MARGIN * 2.0
                + self.columns.len() as f64 * NODE_W
                + self.columns.len().saturating_sub(1) as f64 * GAP_X,
            height: MARGIN * 2.0 + tallest.max(NODE_H),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diamond_takes_three_columns_and_no_crossings() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3
        let out = layout(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        let layers: Vec<usize> = out.nodes.iter().map(|n| n.layer).collect();
        assert_eq!(layers, [0, 1, 1, 2]);
        assert!(out.nodes[0].x < out.nodes[1].x && out.nodes[1].x < out.nodes[3].x);
        assert_ne!(out.nodes[1].y, out.nodes[2].y);
        // Every route starts at its source's right side and ends at its target's left side.
        for route in &out.routes {
            let (s, t) = (out.nodes[route.source], out.nodes[route.target]);
            assert_eq!(route.points.first().unwrap().0, s.x + NODE_W);
            assert_eq!(route.points.last().unwrap().0, t.x);
        }
        assert!(out.width > 3.0 * NODE_W && out.height > 2.0 * NODE_H);
    }

    #[test]
    fn a_long_edge_gets_a_waypoint_per_column_it_crosses() {
        // 0 → 1 → 2 → 3 and 0 → 3: the long edge passes columns 1 and 2.
        let out = layout(4, &[(0, 1), (1, 2), (2, 3), (0, 3)]);
        assert_eq!(out.routes[3].points.len(), 2 + 2 * 2);
        // The waypoints do not sit on a box.
        let (_, y) = out.routes[3].points[2];
        let box_1 = out.nodes[1];
        assert!(y < box_1.y || y > box_1.y + NODE_H, "{y} vs {box_1:?}");
    }

    #[test]
    fn ordering_removes_an_avoidable_crossing() {
        // Sources 0, 1; targets 2, 3 with 0 → 3 and 1 → 2: input order crosses.
        let out = layout(4, &[(0, 3), (1, 2)]);
        let above = |a: usize, b: usize| out.nodes[a].y < out.nodes[b].y;
        assert_eq!(above(0, 1), above(3, 2));
    }

    #[test]
    fn a_cycle_does_not_hang_or_panic() {
        let out = layout(3, &[(0, 1), (1, 2), (2, 1)]);
        assert_eq!(out.nodes.len(), 3);
        assert_eq!(out.routes.len(), 3);
        let empty = layout(0, &[]);
        assert!(empty.nodes.is_empty());
    }
}
