//! Which slot serves which server, and the commands that get there: pure, so the order that
//! keeps a ready server in the backend at every instant is tested with tables.

use std::net::SocketAddr;

use super::runtime::{Admin, Command, Slot};
use crate::deploy::model::Server;

/// haproxy's largest server weight.
pub const MAX_WEIGHT: u32 = 256;

/// The weights haproxy gets for `servers`: theirs, scaled down (keeping their ratio, none
/// below 1) when one passes [`MAX_WEIGHT`].
pub fn weights(servers: &[Server]) -> Vec<u32> {
    let max = servers.iter().map(|s| s.weight).max().unwrap_or(1);
    servers
        .iter()
        .map(|s| if max <= MAX_WEIGHT { s.weight } else { (u64::from(s.weight) * 256 / u64::from(max)).max(1) as u32 })
        .collect()
}

/// The commands that bring `slots` to `targets` (address, weight), in an order that never
/// leaves the backend without a ready server that was there: new slots are pointed and
/// weighted while still in `maint`, then made ready, and only then are the leaving ones put in
/// `maint`. A target whose address a slot already has keeps that slot; the others take slots
/// in `maint` first. Commands that would change nothing are left out, so replaying a state
/// haproxy already has sends none. Returns, too, the slot each target got.
pub fn plan(slots: &[Slot], targets: &[(SocketAddr, u32)]) -> Result<(Vec<Command>, Vec<String>), usize> {
    let mut taken: Vec<Option<usize>> = vec![None; targets.len()];
    let mut used = vec![false; slots.len()];
    // Same address: the ready slot first (it may hold connections), then any.
    for (t, (addr, _)) in targets.iter().enumerate() {
        let same = |i: &usize| !used[*i] && slots[*i].addr == *addr;
        let found = (0..slots.len())
            .filter(same)
            .find(|i| slots[*i].admin == Admin::Ready)
            .or_else(|| (0..slots.len()).find(same));
        if let Some(i) = found {
            used[i] = true;
            taken[t] = Some(i);
        }
    }
    for place in taken.iter_mut().filter(|p| p.is_none()) {
        let free = |i: &usize| !used[*i];
        let i = (0..slots.len())
            .filter(free)
            .find(|i| slots[*i].admin == Admin::Maint)
            .or_else(|| (0..slots.len()).find(free))
            .ok_or(targets.len())?;
        used[i] = true;
        *place = Some(i);
    }
    let taken: Vec<usize> = taken.into_iter().map(|i| i.expect("every target has a slot")).collect();
    let mut commands = Vec::new();
    for (t, &i) in taken.iter().enumerate() {
        let (slot, (addr, weight)) = (&slots[i], targets[t]);
        if slot.addr != addr {
            commands.push(Command::Addr { slot: slot.name.clone(), addr });
        }
        if slot.weight != weight {
            commands.push(Command::Weight { slot: slot.name.clone(), weight });
        }
    }
    for &i in &taken {
        if slots[i].admin != Admin::Ready {
            commands.push(Command::State { slot: slots[i].name.clone(), admin: Admin::Ready });
        }
    }
    for (i, slot) in slots.iter().enumerate() {
        if !used[i] && slot.admin != Admin::Maint {
            commands.push(Command::State { slot: slot.name.clone(), admin: Admin::Maint });
        }
    }
    Ok((commands, taken.iter().map(|&i| slots[i].name.clone()).collect()))
}

/// The commands that put `now` back to `before`, slot by slot.
pub fn plan_back(before: &[Slot], now: &[Slot]) -> Vec<Command> {
    let mut commands = Vec::new();
    for old in before {
        let current = now.iter().find(|s| s.name == old.name);
        if current.is_none_or(|c| c.addr != old.addr) {
            commands.push(Command::Addr { slot: old.name.clone(), addr: old.addr });
        }
        if current.is_none_or(|c| c.weight != old.weight) {
            commands.push(Command::Weight { slot: old.name.clone(), weight: old.weight });
        }
    }
    // Ready ones before maint ones, as in `plan`.
    for admin in [Admin::Ready, Admin::Drain, Admin::Maint] {
        for old in before.iter().filter(|s| s.admin == admin) {
            if now.iter().find(|s| s.name == old.name).is_none_or(|c| c.admin != admin) {
                commands.push(Command::State { slot: old.name.clone(), admin });
            }
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::color::Color;

    fn slot(name: &str, addr: &str, weight: u32, admin: Admin) -> Slot {
        Slot { name: name.into(), addr: addr.parse().unwrap(), weight, admin }
    }

    fn addr(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    #[test]
    fn a_switch_points_free_slots_first_and_retires_last() {
        let slots = [
            slot("s1", "127.0.0.1:32768", 1, Admin::Ready),
            slot("s2", "127.0.0.1:1", 1, Admin::Maint),
            slot("s3", "127.0.0.1:1", 1, Admin::Maint),
        ];
        // blue (s1) to green: green takes s2, is ready before s1 leaves.
        let (commands, placed) = plan(&slots, &[(addr("127.0.0.1:32769"), 1)]).unwrap();
        assert_eq!(placed, ["s2"]);
        assert_eq!(
            commands,
            [
                Command::Addr { slot: "s2".into(), addr: addr("127.0.0.1:32769") },
                Command::State { slot: "s2".into(), admin: Admin::Ready },
                Command::State { slot: "s1".into(), admin: Admin::Maint },
            ]
        );
        // A canary keeps blue's slot and reweights it.
        let (commands, placed) = plan(&slots, &[(addr("127.0.0.1:32768"), 9), (addr("127.0.0.1:32769"), 1)]).unwrap();
        assert_eq!(placed, ["s1", "s2"]);
        assert_eq!(commands[0], Command::Weight { slot: "s1".into(), weight: 9 });
        assert_eq!(commands.last(), Some(&Command::State { slot: "s2".into(), admin: Admin::Ready }));
        // What haproxy already has: nothing to send (a replay in sync is free).
        assert_eq!(plan(&slots, &[(addr("127.0.0.1:32768"), 1)]).unwrap().0, []);
        // Three servers in a pool of three: fits; four: refused before anything is sent.
        let four = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"].map(|a| (addr(a), 1));
        assert!(plan(&slots, &four[..3]).is_ok());
        assert_eq!(plan(&slots, &four), Err(4));
    }

    fn server(addr: &str, weight: u32) -> Server {
        Server { addr: addr.into(), weight, container: "web-blue-1".into(), color: Color::Blue }
    }

    #[test]
    fn weights_fit_haproxy() {
        assert_eq!(weights(&[server("a", 9), server("b", 1)]), [9, 1]);
        assert_eq!(weights(&[server("a", 4288), server("b", 33)]), [256, 1]);
        assert_eq!(weights(&[server("a", 512), server("b", 256)]), [256, 128]);
    }

    #[test]
    fn putting_slots_back_restores_them_ready_ones_first() {
        let before = [slot("s1", "127.0.0.1:32768", 1, Admin::Ready), slot("s2", "127.0.0.1:1", 1, Admin::Maint)];
        let now = [slot("s1", "127.0.0.1:32768", 1, Admin::Maint), slot("s2", "127.0.0.1:32769", 2, Admin::Ready)];
        assert_eq!(
            plan_back(&before, &now),
            [
                Command::Addr { slot: "s2".into(), addr: addr("127.0.0.1:1") },
                Command::Weight { slot: "s2".into(), weight: 1 },
                Command::State { slot: "s1".into(), admin: Admin::Ready },
                Command::State { slot: "s2".into(), admin: Admin::Maint },
            ]
        );
        assert_eq!(plan_back(&before, &before), []);
    }
}
