//! `Slots`: the live streams' state, addressed by a slot number that the
//! stream table keeps next to each stream, so a segment finds its state
//! with the table's one hash lookup and a vector index. Slots of finished
//! streams are reused, so memory follows the most streams held at once.

/// A slot number.
pub type Slot = u32;

/// Storage for values addressed by reusable slot numbers.
pub struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<Slot>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { items: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slots<T> {
    /// The slot the next [`Slots::insert`] will use.
    pub fn next_slot(&self) -> Slot {
        self.free.last().copied().unwrap_or(self.items.len() as Slot)
    }

    /// Store `value` in [`Slots::next_slot`] and return that slot.
    pub fn insert(&mut self, value: T) -> Slot {
        match self.free.pop() {
            Some(s) => {
                self.items[s as usize] = Some(value);
                s
            }
            None => {
                self.items.push(Some(value));
                (self.items.len() - 1) as Slot
            }
        }
    }

    /// The value in `slot`, if any.
    #[inline]
    pub fn get(&self, slot: Slot) -> Option<&T> {
        self.items.get(slot as usize)?.as_ref()
    }

    /// The value in `slot`, if any.
    #[inline]
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut T> {
        self.items.get_mut(slot as usize)?.as_mut()
    }

    /// Take the value out of `slot` and free the slot.
    pub fn remove(&mut self, slot: Slot) -> Option<T> {
        let v = self.items.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(v)
    }

    /// Take the value out of `slot` for good (the slot is not reused).
    pub fn take(&mut self, slot: Slot) -> Option<T> {
        self.items.get_mut(slot as usize)?.take()
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Every held value with its slot.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &T)> {
        self.items.iter().enumerate().filter_map(|(i, v)| Some((i as Slot, v.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_after_removal() {
        let mut s = Slots::default();
        assert_eq!(s.next_slot(), 0);
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!((a, b, s.len()), (0, 1, 2));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(a), None);
        assert_eq!(s.next_slot(), a);
        assert_eq!(s.insert("c"), a);
        assert_eq!(s.get(a), Some(&"c"));
        assert_eq!(s.iter().map(|(i, v)| (i, *v)).collect::<Vec<_>>(), vec![(0, "c"), (1, "b")]);
        assert_eq!(s.take(b), Some("b"));
        assert_eq!((s.take(b), s.get(b)), (None, None));
    }
}
