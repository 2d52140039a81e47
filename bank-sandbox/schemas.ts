/**
 * JSON Schemas of the request bodies the sandbox accepts: the part of OBL VRP Profile 4.0.0
 * (OBDomesticVRPConsentRequest, OBDomesticVRPRequest) the sandbox reads, with the spec's
 * lengths and patterns. The official document stays the judge of conformance; these only let
 * fastify refuse malformed input before a handler sees it, with no dependency on the spec file.
 */
import type { PeriodAlignment, PeriodType } from '../protocol/vrp-periodic-limits.ts';
import { PERIOD_ALIGNMENTS, PERIOD_TYPES } from '../protocol/vrp-periodic-limits.ts';

/** OBIE VRP 4.0: OBActiveCurrencyAndAmount_SimpleType. */
const amount = { type: 'string', pattern: '^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$' } as const;
/** OBIE VRP 4.0: ActiveOrHistoricCurrencyCode. */
const currency = { type: 'string', pattern: '^[A-Z]{3,3}$' } as const;
const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength }) as const;
const dateTime = { type: 'string', format: 'date-time' } as const;

const currencyAndAmount = {
  type: 'object',
  required: ['Amount', 'Currency'],
  properties: { Amount: amount, Currency: currency },
} as const;

/** OBIE VRP 4.0: OBCashAccountDebtorWithName and OBCashAccountCreditor3 share this shape. */
const cashAccount = {
  type: 'object',
  required: ['SchemeName', 'Identification', 'Name'],
  properties: {
    SchemeName: text(256),
    Identification: text(256),
    Name: text(70),
    SecondaryIdentification: text(34),
  },
} as const;

const remittanceInformation = {
  type: 'object',
  properties: {
    Structured: { type: 'array', items: { type: 'object' } },
    Unstructured: { type: 'array', items: text(140) },
  },
} as const;

const initiation = {
  type: 'object',
  properties: {
    DebtorAccount: cashAccount,
    CreditorAccount: cashAccount,
    RemittanceInformation: remittanceInformation,
  },
} as const;

const risk = { type: 'object' } as const;

const controlParameters = {
  type: 'object',
  required: ['VRPType', 'PSUAuthenticationMethods', 'MaximumIndividualAmount', 'PeriodicLimits'],
  properties: {
    ValidFromDateTime: dateTime,
    ValidToDateTime: dateTime,
    MaximumIndividualAmount: currencyAndAmount,
    PeriodicLimits: {
      type: 'array',
      minItems: 1,
      maxItems: 20, // sandbox bound; the spec sets none
      items: {
        type: 'object',
        required: ['PeriodType', 'PeriodAlignment', 'Amount', 'Currency'],
        properties: {
          PeriodType: { type: 'string', enum: PERIOD_TYPES },
          PeriodAlignment: { type: 'string', enum: PERIOD_ALIGNMENTS },
          Amount: amount,
          Currency: currency,
        },
      },
    },
    VRPType: { type: 'array', minItems: 1, items: { type: 'string' } },
    PSUAuthenticationMethods: { type: 'array', minItems: 1, items: { type: 'string' } },
    PSUInteractionTypes: { type: 'array', items: { type: 'string', enum: ['InSession', 'OffSession'] } },
  },
} as const;

export const consentRequestSchema = {
  type: 'object',
  required: ['Data', 'Risk'],
  properties: {
    Data: {
      type: 'object',
      required: ['ControlParameters', 'Initiation'],
      properties: {
        ReadRefundAccount: { type: 'string', enum: ['Yes', 'No'] },
        ControlParameters: controlParameters,
        Initiation: initiation,
      },
    },
    Risk: risk,
  },
} as const;

export const paymentRequestSchema = {
  type: 'object',
  required: ['Data', 'Risk'],
  properties: {
    Data: {
      type: 'object',
      required: ['ConsentId', 'PSUAuthenticationMethod', 'VRPType', 'Initiation', 'Instruction'],
      properties: {
        ConsentId: text(128),
        PSUAuthenticationMethod: { type: 'string' },
        PSUInteractionType: { type: 'string', enum: ['InSession', 'OffSession'] },
        VRPType: { type: 'string' },
        Initiation: initiation,
        Instruction: {
          type: 'object',
          required: ['InstructionIdentification', 'EndToEndIdentification', 'InstructedAmount', 'CreditorAccount'],
          properties: {
            InstructionIdentification: text(35),
            EndToEndIdentification: text(35),
            RemittanceInformation: remittanceInformation,
            InstructedAmount: currencyAndAmount,
            CreditorAccount: cashAccount,
          },
        },
      },
    },
    Risk: risk,
  },
} as const;

/** OBIE VRP 4.0: OBVRPFundsConfirmationRequest. */
export const fundsConfirmationRequestSchema = {
  type: 'object',
  required: ['Data'],
  properties: {
    Data: {
      type: 'object',
      required: ['ConsentId', 'InstructedAmount'],
      properties: {
        ConsentId: text(128),
        Reference: text(35),
        InstructedAmount: currencyAndAmount,
      },
    },
  },
} as const;

export const consentIdParamsSchema = {
  type: 'object',
  required: ['ConsentId'],
  properties: { ConsentId: text(128) },
} as const;

export const paymentIdParamsSchema = {
  type: 'object',
  required: ['DomesticVRPId'],
  properties: { DomesticVRPId: text(40) },
} as const;

// Types of the validated bodies: what the handlers may rely on after fastify checked them.
export interface WireAmount {
  Amount: string;
  Currency: string;
}
export interface WireCashAccount {
  SchemeName: string;
  Identification: string;
  Name: string;
  SecondaryIdentification?: string;
}
export interface WireInitiation {
  DebtorAccount?: WireCashAccount;
  CreditorAccount?: WireCashAccount;
  RemittanceInformation?: { Structured?: object[]; Unstructured?: string[] };
  [extra: string]: unknown;
}
export interface WireControlParameters {
  ValidFromDateTime?: string;
  ValidToDateTime?: string;
  MaximumIndividualAmount: WireAmount;
  PeriodicLimits: (WireAmount & { PeriodType: PeriodType; PeriodAlignment: PeriodAlignment })[];
  VRPType: string[];
  PSUAuthenticationMethods: string[];
  PSUInteractionTypes?: string[];
  [extra: string]: unknown;
}
export interface ConsentRequestBody {
  Data: { ReadRefundAccount?: 'Yes' | 'No'; ControlParameters: WireControlParameters; Initiation: WireInitiation };
  Risk: Record<string, unknown>;
}
export interface FundsConfirmationRequestBody {
  Data: { ConsentId: string; Reference?: string; InstructedAmount: WireAmount };
}
export interface PaymentRequestBody {
  Data: {
    ConsentId: string;
    PSUAuthenticationMethod: string;
    PSUInteractionType?: string;
    VRPType: string;
    Initiation: WireInitiation;
    Instruction: {
      InstructionIdentification: string;
      EndToEndIdentification: string;
      RemittanceInformation?: WireInitiation['RemittanceInformation'];
      InstructedAmount: WireAmount;
      CreditorAccount: WireCashAccount;
      [extra: string]: unknown;
    };
  };
  Risk: Record<string, unknown>;
}
