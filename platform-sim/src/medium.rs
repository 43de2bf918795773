//! The simulated network: per-link bandwidth, a shared WiFi channel or a switched Ethernet,
//! gamma-distributed latency, loss, and the faults that act on links. Everything is seeded.
//!
//! # Presets and where their figures come from
//!
//! **`wifi`: Raspberry Pi 3 on 2.4 GHz 802.11n** (docs/design.md §1.1: every device, the gateway
//! included, is a station of one access point).
//! - One channel shared by all stations: one transmission at a time; serialisation time
//!   `(bytes + 0)·8 / 40 Mbit/s` plus a fixed `120 µs` per frame for DIFS, average back-off
//!   (7.5 slots × 9 µs), preamble, SIFS and the MAC ACK. The Pi 3's BCM43438 is 1×1, 20 MHz,
//!   PHY rate up to 72.2 Mbit/s; 40 Mbit/s is a typical achieved MCS at room distance. With
//!   1500-byte packets and an ACK every second segment this gives ≈ 24 Mbit/s TCP goodput per
//!   air hop, inside the 20–30 Mbit/s iperf figures commonly reported for a Pi 3 on 2.4 GHz.
//! - Station-to-station traffic crosses the air twice (station → AP → station): `relay_hops = 2`,
//!   so a Pi-to-Pi TCP stream gets ≈ 12 Mbit/s when alone on the channel.
//! - One-way latency beyond serialisation: `0.5 ms + Gamma(k = 2, θ = 0.75 ms)` (mean 2 ms,
//!   ping RTT ≈ 4–5 ms with a tail), the gamma family and shape of QLA-RTS' reference links
//!   (docs/design.md §7.1: shape 2, scale 1 ms). Jitter never reorders packets of one link
//!   (WiFi delivers in order).
//! - No residual loss by default (the MAC retransmits); loss experiments add it.
//!
//! **`ethernet`: 100 Mbit/s switched** (the Pi 3's USB-attached LAN9514): full duplex, each
//! sender's port and each receiver's switch port serialise at 100 Mbit/s with 38 bytes of
//! framing per packet (preamble, header, FCS, gap); latency `50 µs + Gamma(2, 25 µs)`.

use crate::rng::Rng;

/// How nodes share the medium.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Topology {
    /// One channel: a transmission occupies it for `relay_hops` serialisations.
    SharedChannel {
        /// Air hops per packet (2 for station → AP → station).
        relay_hops: u32,
    },
    /// A switch: the sender's uplink and the receiver's port serialise separately.
    Switched,
}

/// Parameters of a network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetModel {
    /// Preset name, for reports.
    pub name: String,
    /// Sharing.
    pub topology: Topology,
    /// Default bit rate of a link, bits per second.
    pub rate_bps: f64,
    /// Per-link rate overrides `(a, b, bps)` (either direction).
    pub link_rates: Vec<(usize, usize, f64)>,
    /// Bytes added to each packet on the medium (framing).
    pub overhead_bytes: u32,
    /// Fixed medium time per packet per hop, µs (MAC contention and acknowledgement).
    pub per_packet_us: f64,
    /// Minimum one-way latency beyond serialisation, µs.
    pub latency_loc_us: f64,
    /// Gamma shape of the variable latency.
    pub latency_shape: f64,
    /// Gamma scale of the variable latency, µs.
    pub latency_scale_us: f64,
    /// Probability a packet is lost.
    pub loss: f64,
    /// IP MTU of the devices.
    pub mtu: usize,
}

impl NetModel {
    /// Raspberry Pi 3 stations on one 2.4 GHz 802.11n access point (see the module docs).
    pub fn wifi() -> NetModel {
        NetModel {
            name: "wifi-pi3-2.4GHz".into(),
            topology: Topology::SharedChannel { relay_hops: 2 },
            rate_bps: 40e6,
            link_rates: Vec::new(),
            overhead_bytes: 0,
            per_packet_us: 120.0,
            latency_loc_us: 500.0,
            latency_shape: 2.0,
            latency_scale_us: 750.0,
            loss: 0.0,
            mtu: 1500,
        }
    }

    /// 100 Mbit/s switched Ethernet.
    pub fn ethernet() -> NetModel {
        NetModel {
            name: "ethernet-100M".into(),
            topology: Topology::Switched,
            rate_bps: 100e6,
            link_rates: Vec::new(),
            overhead_bytes: 38,
            per_packet_us: 0.0,
            latency_loc_us: 50.0,
            latency_shape: 2.0,
            latency_scale_us: 25.0,
            loss: 0.0,
            mtu: 1500,
        }
    }

    /// A preset by name (`wifi`, `ethernet`).
    pub fn preset(name: &str) -> Option<NetModel> {
        match name {
            "wifi" => Some(NetModel::wifi()),
            "ethernet" | "eth" => Some(NetModel::ethernet()),
            _ => None,
        }
    }

    fn rate(&self, a: usize, b: usize) -> f64 {
        self.link_rates
            .iter()
            .find(|&&(x, y, _)| (x, y) == (a, b) || (x, y) == (b, a))
            .map_or(self.rate_bps, |&(_, _, r)| r)
    }

    /// Medium time of one packet of `len` bytes on link `a → b`, per hop, µs.
    pub fn hop_us(&self, a: usize, b: usize, len: usize) -> f64 {
        (len + self.overhead_bytes as usize) as f64 * 8.0 / self.rate(a, b) * 1e6
            + self.per_packet_us
    }
}

/// A time-bounded loss or outage acting on the medium.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFault {
    /// From this instant, µs.
    pub from_us: u64,
    /// Until this instant (exclusive), µs.
    pub until_us: u64,
    /// The link's endpoints (either direction), or every link when `None`.
    pub link: Option<(usize, usize)>,
    /// Loss probability while active (1.0: link down).
    pub loss: f64,
}

/// What the medium decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Arrives at this instant, µs.
    Arrives(u64),
    /// Lost (its medium time was spent all the same).
    Lost,
}

/// Medium state of one cluster: channel or port occupancy and per-link generators.
pub struct Medium {
    model: NetModel,
    channel_free: f64,
    port_free: Vec<f64>,
    uplink_free: Vec<f64>,
    last_arrival: Vec<u64>,
    rngs: Vec<Rng>,
    nodes: usize,
    faults: Vec<LinkFault>,
    /// Bytes put on the medium (IP packets, once per packet), lost ones included.
    pub bytes: u64,
    /// Packets put on the medium.
    pub packets: u64,
    /// Packets lost.
    pub lost: u64,
    /// IP bytes each node put on the medium once the cluster was ready ([`Medium::origin`]
    /// set): what the testbed's interface counters see, connection set-up excluded.
    pub sent: Vec<u64>,
    /// Fault times count from this instant (set when the cluster is ready); no fault acts
    /// before it is set.
    pub origin: Option<u64>,
}

impl Medium {
    /// A medium for `nodes` nodes.
    pub fn new(model: NetModel, nodes: usize, seed: u64, faults: Vec<LinkFault>) -> Medium {
        Medium {
            channel_free: 0.0,
            port_free: vec![0.0; nodes],
            uplink_free: vec![0.0; nodes],
            last_arrival: vec![0; nodes * nodes],
            rngs: (0..nodes * nodes)
                .map(|i| Rng::derive(seed, 0x11_0000 + i as u64))
                .collect(),
            nodes,
            faults,
            model,
            bytes: 0,
            packets: 0,
            lost: 0,
            sent: vec![0; nodes],
            origin: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &NetModel {
        &self.model
    }

    /// Sends a `len`-byte packet from `a` to `b` at `now_us`.
    pub fn send(&mut self, now_us: u64, a: usize, b: usize, len: usize) -> Fate {
        let m = &self.model;
        let now = now_us as f64;
        let hop = m.hop_us(a, b, len);
        let done = match m.topology {
            Topology::SharedChannel { relay_hops } => {
                let start = now.max(self.channel_free);
                self.channel_free = start + hop * relay_hops.max(1) as f64;
                self.channel_free
            }
            Topology::Switched => {
                let start = now.max(self.uplink_free[a]);
                self.uplink_free[a] = start + hop;
                let out = self.uplink_free[a].max(self.port_free[b]) + hop;
                self.port_free[b] = out;
                out
            }
        };
        self.bytes += len as u64;
        self.packets += 1;
        if self.origin.is_some() {
            self.sent[a] += len as u64;
        }
        let link = a * self.nodes + b;
        let rng = &mut self.rngs[link];
        let jitter = rng.gamma(m.latency_shape, m.latency_scale_us);
        let mut loss = m.loss;
        let rel = self.origin.map(|o| now_us.checked_sub(o));
        for f in &self.faults {
            let on_link = f
                .link
                .is_none_or(|(x, y)| (x, y) == (a, b) || (x, y) == (b, a));
            let Some(Some(t)) = rel else { break };
            if on_link && t >= f.from_us && t < f.until_us {
                loss = 1.0 - (1.0 - loss) * (1.0 - f.loss);
            }
        }
        if rng.chance(loss) {
            self.lost += 1;
            return Fate::Lost;
        }
        let at = (done + m.latency_loc_us + jitter).ceil() as u64;
        // One link delivers in order: jitter delays, never reorders.
        let at = at.max(self.last_arrival[link]);
        self.last_arrival[link] = at;
        Fate::Arrives(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wifi_goodput_is_in_the_stated_range() {
        // 1460-byte segments and a 40-byte ACK per two segments, one air hop.
        let m = NetModel::wifi();
        let per_segment = m.hop_us(0, 1, 1500) + m.hop_us(1, 0, 40) / 2.0;
        let mbps = 1460.0 * 8.0 / per_segment;
        assert!((20.0..30.0).contains(&mbps), "goodput {mbps} Mbit/s");
    }

    #[test]
    fn shared_channel_serialises_and_ethernet_ports_do_not() {
        let mut w = Medium::new(NetModel::wifi(), 3, 1, Vec::new());
        let (Fate::Arrives(a), Fate::Arrives(b)) = (w.send(0, 0, 1, 1500), w.send(0, 2, 1, 1500))
        else {
            panic!("lost")
        };
        assert!(b >= a, "second packet waits for the channel");
        let mut e = Medium::new(NetModel::ethernet(), 4, 1, Vec::new());
        let (Fate::Arrives(a), Fate::Arrives(b)) = (e.send(0, 0, 1, 1500), e.send(0, 2, 3, 1500))
        else {
            panic!("lost")
        };
        assert!(
            a.abs_diff(b) < 200,
            "disjoint pairs run in parallel: {a} {b}"
        );
    }

    #[test]
    fn link_down_drops_everything_on_that_link_only() {
        let down = LinkFault {
            from_us: 0,
            until_us: 1_000_000,
            link: Some((0, 1)),
            loss: 1.0,
        };
        let mut m = Medium::new(NetModel::ethernet(), 3, 1, vec![down]);
        m.origin = Some(0);
        assert_eq!(m.send(10, 1, 0, 100), Fate::Lost);
        assert!(matches!(m.send(10, 0, 2, 100), Fate::Arrives(_)));
        assert!(matches!(m.send(2_000_000, 0, 1, 100), Fate::Arrives(_)));
    }
}
