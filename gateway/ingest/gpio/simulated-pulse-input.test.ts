import { describe, expect, it } from 'vitest';
import { SimulatedPulseInput } from './simulated-pulse-input.ts';

describe('SimulatedPulseInput', () => {
  it('hands each pulse to the watcher with its timestamp, or the clock when none is given', () => {
    const input = new SimulatedPulseInput({ clock: () => 42 });
    const edges: number[] = [];
    input.watch((atMs) => edges.push(atMs));
    input.pulse(7);
    input.pulse();
    expect(edges).toEqual([7, 42]);
  });

  it('loses pulses before watch and after close, as a real pin would', async () => {
    const input = new SimulatedPulseInput();
    const edges: number[] = [];
    input.pulse(1);
    input.watch((atMs) => edges.push(atMs));
    await input.close();
    input.pulse(2);
    expect(edges).toEqual([]);
    expect(input.edgesSent).toBe(2);
  });

  it('refuses a second watcher and a watcher after close', async () => {
    const input = new SimulatedPulseInput({ description: 'sim line 17' });
    input.watch(() => {});
    expect(() => input.watch(() => {})).toThrow('Cannot watch sim line 17 twice: one counter per pin');
    const closed = new SimulatedPulseInput({ description: 'sim line 18' });
    await closed.close();
    expect(() => closed.watch(() => {})).toThrow('Cannot watch sim line 18: it is closed');
  });
});
